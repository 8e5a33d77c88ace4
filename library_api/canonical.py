"""One spelling per image URL: the RFC 3986 section 6 normal form ingest stores and de-duplicates by.

``HTTP://Host:80/x/../a.png#top``, ``http://host/a.png`` and ``http://host/%61.png`` name one
resource; ingest stores (and hashes) the form on the right, so each is one row. Every step
keeps the meaning (RFC 3986 6.2.2 and 6.2.3, RFC 3987 3.1):

- scheme and host lower-case; an internationalised host in its IDNA 2008 A-label form (the
  form the proxy checks, dials and sends: ``proxy.fetch.wire_host``); an IPv6 literal
  compressed;
- the default port (80 for http, 443 for https) and an empty one dropped; an empty path is ``/``;
- the fragment dropped (it is never sent to the origin);
- percent-encoding: hex digits upper-case (``%2f`` -> ``%2F``) and escapes of *unreserved*
  characters decoded (``%7E`` -> ``~``, ``%41`` -> ``A``); reserved and other characters stay
  encoded (``%2F`` is never ``/``), a ``%`` that starts no escape is left as written;
- dot segments (``.``, ``..``, also when spelled ``%2E``) removed from the path;
- characters a URI cannot hold (non-ASCII, ``"<>`{}``) percent-encoded as UTF-8, as httpx (the
  proxy's parser) sends them.

The query is never reordered, its ``+`` never decoded, and nothing else is touched. Parsing is
httpx's, the same as :func:`proxy.source_url.parse_source_url`, so the canonical form is the
request the proxy makes for either spelling.
"""

from __future__ import annotations

import ipaddress
import re

import httpx

DEFAULT_PORTS = {"http": 80, "https": 443}
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def normalize_percent_encoding(text: str) -> str:
    """Upper-case hex digits; decode the escapes of unreserved characters (RFC 3986 6.2.2.1-2)."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in UNRESERVED else "%" + match.group(1).upper()

    return _ESCAPE.sub(fix, text) if "%" in text else text


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, for an absolute path."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments[1:], start=1):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def canonical_url(text: str) -> str | None:
    """The canonical spelling of an http(s) URL, or None when it is not one the proxy could fetch.

    None means "no canonical form": the caller keeps the text as it is (a legacy row) or refuses
    it (ingest, with the source parser's reason). Whitespace, control characters, credentials, an
    unparseable or invalid host, a port out of range: None.
    """
    if not text or any(char.isspace() or not char.isprintable() for char in text):
        return None
    split = _SPLIT.fullmatch(text)
    if split is None:
        return None
    # httpx drops the slash after a final dot segment ("/a/b/.." -> "/a", RFC 3986 says "/a/"): its
    # own dot handling is kept out by spelling dot segments as escapes, which are resolved below.
    path = "/".join(_DOT_SEGMENTS.get(segment, segment) for segment in split["path"].split("/"))
    try:
        parsed = httpx.URL(split["head"] + path + split["rest"])
        scheme = parsed.scheme
        host = parsed.raw_host.decode("ascii").lower()
        port = parsed.port
        userinfo = parsed.userinfo
        target = parsed.raw_path.decode("ascii")
    except Exception:  # httpx and idna raise several types; every one means "not a URL"
        return None
    if scheme not in DEFAULT_PORTS or userinfo or (port is not None and not 0 < port <= 65535):
        return None
    if ":" in host:  # an IPv6 literal (httpx strips its brackets); a zone id names no origin
        if "%" in host:
            return None
        try:
            host = f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    elif len(host) > MAX_HOST_LENGTH or not _HOSTNAME.fullmatch(host):
        return None
    if port == DEFAULT_PORTS[scheme]:
        port = None
    path, question, query = target.partition("?")
    path = remove_dot_segments(normalize_percent_encoding(path or "/"))
    authority = host if port is None else f"{host}:{port}"
    return f"{scheme}://{authority}{path}{question}{normalize_percent_encoding(query)}"


# The same split httpx makes (authority up to the first "/", "?" or "#"), to reach the raw path.
_SPLIT = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)(?P<path>[^?#]*)(?P<rest>(?:\?[^#]*)?)(?:#.*)?", re.S)
_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}
# A DNS name as it goes on the wire, as the proxy's source parser takes it (proxy/source_url.py).
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
MAX_HOST_LENGTH = 253
