"""Which image URLs the API accepts: the proxy's own rule, so nothing listed is unfetchable."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from library_api.canonical import canonical_url
from library_api.errors import bad_request
from proxy.urls import MAX_URL_LENGTH
from proxy.urls import source_refusal as proxy_refusal


def check_source_url(url: object, allowed_sources: Sequence[str]) -> str:
    """``url`` in its canonical spelling if it is an http(s) URL on an allowed host; a 400
    :class:`ApiError` otherwise.

    The canonical form (:func:`library_api.canonical.canonical_url`) is what is checked, stored
    and de-duplicated by: ``HTTP://Host:80/a.png#x`` is ``http://host/a.png``, and a host written
    in Unicode is stored in its IDNA A-label form. Text with no canonical form is checked as it
    is, for the parser's reason.
    """
    if isinstance(url, str) and len(url) <= MAX_URL_LENGTH:
        url = canonical_url(url) or url
    refusal = source_refusal(url, allowed_sources)
    if refusal is not None:
        raise bad_request(*refusal)
    assert isinstance(url, str)
    return url


def source_refusal(url: object, allowed_sources: Sequence[str]) -> tuple[str, str] | None:
    """Why ``url`` (from a request or a stored row) cannot be a source: ``(code, detail)``, or None."""
    if not isinstance(url, str) or not url:
        return "invalid_url", "url must be a non-empty string"
    if len(url) > MAX_URL_LENGTH:
        return "invalid_url", f"url is longer than {MAX_URL_LENGTH} characters"
    return _refusal(url, tuple(allowed_sources))


@lru_cache(maxsize=8192)  # the listing asks again for the same rows on every page view
def _refusal(url: str, allowed_sources: tuple[str, ...]) -> tuple[str, str] | None:
    if not url.isascii() or not url.isprintable() or " " in url:
        return "invalid_url", "url must be ASCII without spaces (percent-encode other characters)"
    try:
        # Address checks (private ranges, DNS) are the proxy's, at fetch time.
        refusal = proxy_refusal(url, allowed_sources)
    except (ValueError, TypeError) as exc:
        # The parser should only raise its refusal; anything else from a junk string is one too.
        return "source_not_allowed", f"source is not a valid URL ({type(exc).__name__})"
    return None if refusal is None else ("source_not_allowed", refusal)
