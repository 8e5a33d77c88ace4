"""What the library reads from its configuration: a small interface of its own.

The library never imports the product's settings. Anything with these attributes configures
it: ``thumbs.settings.Settings`` does (its ``THUMBS_*`` fields of the same names), and so can
a test's or another host application's own object. Thumbnail URLs are made with the proxy's
signing function (``proxy.urls``) from ``secret`` and ``public_base_url``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class LibraryConfig(Protocol):
    @property
    def database_url(self) -> str:
        """``sqlite:///path`` (the embedded default) or ``postgresql://…`` (asyncpg)."""
        ...

    @property
    def secret(self) -> str:
        """The key thumbnail URLs are signed with (the proxy verifies them)."""
        ...

    @property
    def public_base_url(self) -> str:
        """Base of the thumbnail URLs the listing hands out (the edge or CDN)."""
        ...

    @property
    def allowed_sources(self) -> Sequence[str]:
        """Origin hosts an image url may name: the proxy's own allow-list."""
        ...

    @property
    def admin_token(self) -> str:
        """Bearer token for the backfill endpoints; empty: they are closed."""
        ...

    @property
    def ingest_token(self) -> str:
        """Bearer token for ingest; empty: closed unless ``ingest_open``."""
        ...

    @property
    def ingest_open(self) -> bool: ...

    @property
    def cors_origins(self) -> Sequence[str]:
        """Origins that may read the listing cross-origin."""
        ...
