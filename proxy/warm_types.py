"""The warm-up contract shared by the proxy (which generates) and the API (which asks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class WarmOutcome:
    """What happened to one source. ``ok`` means the thumbnail is in the disk store."""

    source: str
    ok: bool
    error: str | None = None  # error code as in the proxy's error contract, e.g. "origin_timeout"
    detail: str | None = None
    width: int | None = None  # source image size, when known
    height: int | None = None
    color: str | None = None  # dominant colour "#rrggbb", the grid's placeholder


class WarmClient(Protocol):
    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        """Queue thumbnails for ``sources``; with ``wait`` generate them and report each.

        Without ``wait`` the outcomes only say whether each source was accepted
        (``ok=True``) or refused (``ok=False`` with an error). ``tags`` (one per source,
        opaque to the proxy) travel with queued entries to the consumer's ``finished`` hook.
        """
        ...
