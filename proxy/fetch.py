"""Fetching source images from origins, under a policy that cannot be talked around.

- Only ``http``/``https`` URLs whose host is in ``THUMBS_ALLOWED_SOURCES`` (exact host,
  ``host:port``, or ``*.suffix``); an empty list allows nothing.
- Private, loopback, link-local, multicast, reserved and IPv4-mapped addresses are refused
  unless ``THUMBS_ALLOW_PRIVATE_SOURCES``. The check happens inside the connection: the
  network backend resolves the name, checks every address, and connects to the checked
  address itself, so there is no window for DNS rebinding between check and connect.
- Redirects are followed by hand (at most ``max_redirects``), each hop re-checked.
- A connect timeout and a total deadline; the body is streamed raw and cut off at
  ``max_source_bytes`` while reading, counting the bytes *after* any content coding is
  undone (:mod:`proxy.content_coding`: stacked and unknown codings are refused, gzip and
  deflate inflated a bounded piece at a time) and, under a coding, the bytes as sent too.
- The HTTP/1.1 exchange is :mod:`proxy.origin_http` (httptools' parser over an asyncio
  protocol, bounded head and buffering); every connection it makes comes from
  :class:`GuardedDialer`, and :func:`check_guard` proves at startup that a request to a
  private address is refused.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from proxy.admission import FetchTicket
from proxy.content_coding import CappedDecoder, UnsupportedEncoding, check_transfer_coding
from proxy.errors import (
    OriginError,
    OriginTimeout,
    OriginUnreachable,
    ProxyError,
    SourceNotAllowed,
    TooLarge,
)
from proxy.origin_http import OriginConnection, OriginPool, OriginProtocolError, ResponseHead
from proxy.sniff import Body
from proxy.source_url import DEFAULT_PORTS, MAX_URL_LENGTH, parse_source_url

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "thumbs-proxy/0.1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Ranges Python's ``is_global`` still calls global but that are not the public internet
# (fec0::/10: deprecated IPv6 site-local, still routed inside some networks).
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in ("100.64.0.0/10", "192.0.0.0/24", "64:ff9b:1::/48", "2002::/16", "fec0::/10")
)


def is_public_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if address.ipv4_mapped is not None:
            return False  # IPv4-mapped addresses are refused outright
        if embedded is not None and not is_public_address(embedded):
            return False
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return False
    if any(address in net for net in _EXTRA_BLOCKED if net.version == address.version):
        return False
    return address.is_global


@dataclass(frozen=True)
class SourcePolicy:
    allowed_hosts: tuple[str, ...]
    allow_private: bool

    def check_url(self, url: object) -> httpx.URL:
        """The parsed URL if it may be fetched; :class:`SourceNotAllowed` (never anything else) otherwise."""
        parsed = parse_source_url(url)
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        if not self.host_allowed(wire_host(parsed), port):
            raise SourceNotAllowed(f"host {parsed.host[:100]}:{port} is not in the allowed sources")
        return parsed

    def host_allowed(self, host: str, port: int) -> bool:
        # Both sides in their IDNA (ASCII) form: httpx's ``URL.host`` is Unicode only when the
        # whole name starts with "xn--", so an entry written either way matched some spellings only.
        host = _ascii_pattern(host)
        for entry in self.allowed_hosts:
            pattern, _, entry_port = entry.lower().rpartition(":") if _has_port(entry) else (entry.lower(), "", "")
            if entry_port and int(entry_port) != port:
                continue
            pattern = _ascii_pattern(pattern.strip("[]"))
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    def check_address(self, address: IPAddress) -> None:
        if not self.allow_private and not is_public_address(address):
            raise SourceNotAllowed(f"the source resolves to a non-public address ({address})")


def wire_host(url: httpx.URL) -> str:
    """The host as DNS, TLS and the Host header see it: IDNA 2008 A-labels (``faß.de`` is
    ``xn--fa-hia.de``). Resolving httpx's Unicode ``URL.host`` lets Python's IDNA 2003 codec
    encode it again, to another name (``fass.de``) than the one checked and sent."""
    return url.raw_host.decode("ascii").lower()


@functools.lru_cache(maxsize=1024)
def _ascii_pattern(name: str) -> str:
    """An allow-list name (or a host) lower-cased in its ASCII form, a ``*.`` prefix kept; a
    name idna cannot encode is left as written (it then matches nothing but itself)."""
    wildcard, bare = ("*.", name[2:]) if name.startswith("*.") else ("", name)
    bare = bare.lower().rstrip(".")
    if not bare.isascii():
        try:
            bare = httpx.URL(f"http://{bare}/").raw_host.decode("ascii")
        except Exception:  # not a name httpx can encode: compared as written
            pass
    return wildcard + bare


def _has_port(entry: str) -> bool:
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isascii() and tail.isdigit() and (not head.startswith("[") or head.endswith("]"))


class RefusedRedirect(SourceNotAllowed):
    """The origin redirected where the policy refuses to go (another scheme, port or host, a
    private address): the same 403 as a refused source URL, but the origin was asked, so it is
    remembered like the origin's other failures (:mod:`proxy.negative`). Not remembered, an
    allowed URL redirecting away had every request for its thumbnail contact the origin again."""


class GuardedDialer:
    """Resolve, check every address against the policy, connect to a checked address."""

    def __init__(self, policy: SourcePolicy, ssl_context: ssl.SSLContext, connect_timeout: float) -> None:
        self.policy = policy
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout

    async def __call__(self, scheme: str, host: str, port: int) -> OriginConnection:
        addresses = await _resolve(host, port)
        for address in addresses:
            self.policy.check_address(address)  # any bad answer refuses the whole name
        tls = self.ssl_context if scheme == "https" else None
        last_error: ProxyError | None = None
        for address in addresses:
            try:
                return await _connect(str(address), port, self.connect_timeout, tls, host)
            except (OriginUnreachable, OriginTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error


async def _connect(
    address: str, port: int, seconds: float, tls: ssl.SSLContext | None, server_hostname: str
) -> OriginConnection:
    """A connection to an already checked address (no name is resolved here); TLS verifies
    the certificate against the URL's host name, not the address."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(seconds):
            _, connection = await loop.create_connection(
                OriginConnection, address, port, ssl=tls, server_hostname=server_hostname if tls else None
            )
    except TimeoutError as exc:
        raise OriginTimeout(f"connecting to the origin ({address}:{port}) timed out") from exc
    except OSError as exc:  # refused, unreachable, and TLS failures (ssl.SSLError is an OSError)
        raise OriginUnreachable(f"cannot connect to the origin: {exc.strerror or exc}") from exc
    return connection


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OriginUnreachable(f"cannot resolve {host}") from exc
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OriginUnreachable(f"{host} has no addresses")
    return addresses


def request_head(url: httpx.URL) -> bytes:
    """The GET we send: only identity (anything else an origin sends is undone under the cap,
    or refused), and nothing from the URL that could split the head."""
    target, host = url.raw_path or b"/", url.netloc
    if any(byte <= 0x20 or byte == 0x7F for byte in target + host):
        raise SourceNotAllowed("the source URL has characters that cannot be sent")
    return (b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nUser-Agent: " + USER_AGENT.encode()
            + b"\r\nAccept: image/*\r\nAccept-Encoding: identity\r\n\r\n")


async def check_guard() -> None:
    """Startup self-check: a request to a private address must be refused by the guard.

    Runs the fetcher class itself, with a strict policy that allows the target host (so only
    the address check can refuse it), against 127.0.0.1 on a port nobody listens on. Refused
    by the guard: fine, and no packet was sent. Anything else (a connection error means it
    dialled) and the proxy must not serve.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the request: nothing listens
    policy = SourcePolicy((f"127.0.0.1:{port}",), allow_private=False)
    fetcher = OriginFetcher(policy, max_bytes=1024, connect_timeout=2.0, total_timeout=2.0, max_redirects=0)
    outcome = "it answered"
    try:
        await fetcher.fetch(f"http://127.0.0.1:{port}/")
    except SourceNotAllowed:
        return
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    finally:
        await fetcher.close()
    raise RuntimeError(
        "the origin fetcher's private-address guard is not in effect (a request to "
        f"127.0.0.1:{port} was not refused by it; {outcome})"
    )


class OriginFetcher:
    """Downloads one source under the policy, limits and timeouts; owns its httpx client."""

    def __init__(
        self,
        policy: SourcePolicy,
        *,
        max_bytes: int,
        connect_timeout: float,
        total_timeout: float,
        max_redirects: int,
    ) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self.total_timeout = total_timeout
        self.max_redirects = max_redirects
        self.dial = GuardedDialer(policy, httpx.create_ssl_context(), connect_timeout)
        self.pool = OriginPool(self.dial)
        self.decoded_bytes = 0  # bytes produced by content decoding, over the fetcher's life

    async def close(self) -> None:
        self.pool.close()

    async def fetch(self, source: str, ticket: FetchTicket | None = None) -> Body:
        """The body as the pipeline will see it; ``ticket`` learns the declared size early."""
        try:
            async with asyncio.timeout(self.total_timeout):
                return await self._fetch(source, ticket)
        except TimeoutError as exc:
            raise OriginTimeout(f"the origin did not answer within {self.total_timeout:g} s") from exc
        except OriginProtocolError as exc:
            raise OriginError(f"origin transfer failed: {exc}") from exc

    async def _fetch(self, source: str, ticket: FetchTicket | None) -> Body:
        url = self.policy.check_url(source)
        redirected = False  # once the origin has redirected, a refusal is about its answer
        for _ in range(self.max_redirects + 1):
            port = url.port or DEFAULT_PORTS[url.scheme]
            try:
                async with self.pool.get(url.scheme, wire_host(url), port, request_head(url)) as (head, connection):
                    if head.status in REDIRECT_STATUSES and "location" in head.headers:
                        redirected = True
                        url = self.policy.check_url(_join(url, head.headers["location"]))
                        continue
                    if head.status != 200:
                        raise OriginError(f"the origin answered {head.status}")
                    return await self._read_capped(head, connection, ticket)
            except SourceNotAllowed as exc:
                if not redirected:
                    raise  # the source URL itself: refused without a word from its origin
                raise RefusedRedirect(f"the origin redirected to a source that is not allowed: {exc}") from exc
        raise OriginError(f"more than {self.max_redirects} redirects")

    async def _read_capped(self, head: ResponseHead, connection: OriginConnection, ticket: FetchTicket | None) -> Body:
        # Refused before a body byte is read: stacked or unknown codings.
        check_transfer_coding(head.headers.get("transfer-encoding", ""))
        _check_chunked_is_last(head.headers.get("transfer-encoding", ""))
        decoder = CappedDecoder(head.headers.get("content-encoding", ""), self.max_bytes)
        declared = head.headers.get("content-length", "").strip()
        if declared.isascii() and declared.isdigit():
            if int(declared) > self.max_bytes:
                raise TooLarge(f"the source is {declared} bytes, over the {self.max_bytes} byte limit")
            if ticket is not None and decoder.coding == "identity":
                ticket.expect(int(declared))
        # One buffer filled in place (preallocated when the length is declared): a list of
        # chunks joined at the end holds every body twice, and the chunks' freed space is too
        # fragmented for the next body, so the peak would be twice the bytes in flight.
        size = int(declared) if declared.isascii() and declared.isdigit() and decoder.coding == "identity" else 0
        body = bytearray(size)
        filled = 0
        sent, sent_cap = 0, self.max_bytes if decoder.coding != "identity" else float("inf")
        try:
            async for chunk in connection.body():  # as sent: codings are undone here, under the cap
                # The bytes as sent are capped too: past the end of a gzip stream (padding) or in
                # empty deflate blocks an origin sends bytes that decode to nothing, which went on
                # for the whole deadline (1.9 GB read in 5 s, then a 504). Identity: the decoder counts.
                sent += len(chunk)
                if sent > sent_cap:
                    raise TooLarge(f"the source is over the {self.max_bytes} byte limit (as sent, {decoder.coding})")
                for piece in decoder.feed(chunk):
                    end = filled + len(piece)
                    if end <= size:
                        body[filled:end] = piece  # same length: written in place, no resize
                    else:
                        body += piece
                    filled = end
                    if decoder.coding != "identity":
                        await asyncio.sleep(0)  # between inflated pieces the loop serves others
            decoder.finish()
        finally:
            if decoder.coding != "identity":
                self.decoded_bytes += decoder.produced
        del body[filled:]  # shorter than declared: the connection reports that as an error first
        # Leaving the pool's context on an error (TooLarge too) closes the connection.
        return body


def _check_chunked_is_last(transfer_encoding: str) -> None:
    """Chunked must be the final transfer coding: otherwise the parser frames the body by the
    connection's end (RFC 9112 6.3) while chunks were announced, and a kept-open connection
    was a 504 after the whole deadline."""
    codings = [part.strip().lower() for part in transfer_encoding.split(",") if part.strip()]
    if "chunked" in codings and codings[-1] != "chunked":
        raise UnsupportedEncoding(f"chunked is not the final transfer coding ({transfer_encoding[:60]!r})")


def _join(url: httpx.URL, location: str) -> str:
    try:
        return str(url.join(location))
    except Exception as exc:  # a Location httpx cannot even join is the origin's fault
        raise OriginError("the origin redirected to an invalid location") from exc


def policy_from(allowed_sources: Sequence[str], allow_private: bool) -> SourcePolicy:
    return SourcePolicy(tuple(entry.strip() for entry in allowed_sources if entry.strip()), allow_private)


__all__ = [
    "MAX_URL_LENGTH", "GuardedDialer", "OriginFetcher", "ProxyError", "RefusedRedirect", "SourcePolicy", "check_guard",
    "is_public_address", "policy_from",
]
