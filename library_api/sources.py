"""Which image URLs the API accepts: the proxy's own rule, so nothing listed is unfetchable."""

from __future__ import annotations

from library_api.errors import bad_request
from proxy.errors import ProxyError
from proxy.fetch import policy_from

MAX_URL_LENGTH = 2048


def check_source_url(url: object, allowed_sources: list[str]) -> str:
    """``url`` if it is an http(s) URL on an allowed host; a 400 :class:`ApiError` otherwise."""
    if not isinstance(url, str) or not url:
        raise bad_request("invalid_url", "url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise bad_request("invalid_url", f"url is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise bad_request("invalid_url", "url must be ASCII without spaces (percent-encode other characters)")
    try:
        # Address checks (private ranges, DNS) are the proxy's, at fetch time.
        policy_from(allowed_sources, allow_private=True).check_url(url)
    except ProxyError as exc:
        raise bad_request("source_not_allowed", str(exc)) from exc
    return url
