"""The one parser every source string goes through: an origin URL, or a refusal with a reason.

Warm, ingest, backfill rows and the URL signer all reach :func:`parse_source_url` (through
:meth:`proxy.fetch.SourcePolicy.check_url`). Whatever the text (``http://[x``,
``http://[object Object]/x.png``, a full-width slash, control characters, a port above
65535, not even a string), the answer is a parsed :class:`httpx.URL` or
:class:`~proxy.errors.SourceNotAllowed`; nothing else is ever raised, so one bad item in a
batch can never fail the others.
"""

from __future__ import annotations

import ipaddress
import re

import httpx

from proxy.errors import SourceNotAllowed

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 4096
# A DNS name as it goes on the wire (IDNA already applied): letters, digits, '-' and '_'
# (some CDNs use underscores), labels of 1-63 characters, an optional final dot.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}\.?$")
MAX_HOST_LENGTH = 253


def parse_source_url(text: object) -> httpx.URL:
    """The parsed origin URL, or :class:`SourceNotAllowed` saying what is wrong with it."""
    if not isinstance(text, str) or not text:
        raise SourceNotAllowed("the source must be a non-empty string")
    if len(text) > MAX_URL_LENGTH:
        raise SourceNotAllowed("source URL is too long")
    if any(char.isspace() or not char.isprintable() for char in text):
        raise SourceNotAllowed("the source URL contains whitespace or control characters")
    try:
        parsed = httpx.URL(text)
        scheme = parsed.scheme
        raw_host = parsed.raw_host.decode("ascii")
        port = parsed.port
        userinfo = parsed.userinfo
        # The IDNA decoding the allow-list check and the dialer use: a malformed A-label
        # (``xn--ls8h``) raises idna's errors there, which were a 422 "could not be processed".
        parsed.host  # noqa: B018
    except Exception as exc:  # httpx and idna raise several types; every one means "not a URL"
        raise SourceNotAllowed("source is not a valid URL") from exc
    if scheme not in DEFAULT_PORTS:
        raise SourceNotAllowed("only http and https sources are allowed")
    if not raw_host:
        raise SourceNotAllowed("source URL has no host")
    if userinfo:
        raise SourceNotAllowed("credentials in source URLs are not allowed")
    if port is not None and not 0 < port <= 65535:
        raise SourceNotAllowed("the source URL's port is out of range")
    if not _valid_host(raw_host):
        raise SourceNotAllowed("the source URL's host is not a valid name or address")
    return parsed


def _valid_host(raw_host: str) -> bool:
    if ":" in raw_host:  # httpx strips the brackets of an IPv6 literal
        if "%" in raw_host:
            return False  # a zone id ("%eth0") names a local interface, never an origin
        try:
            ipaddress.IPv6Address(raw_host)
        except ValueError:
            return False
        return True
    return len(raw_host) <= MAX_HOST_LENGTH and _HOSTNAME.match(raw_host.lower()) is not None
