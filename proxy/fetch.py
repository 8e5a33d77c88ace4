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
  deflate inflated a bounded piece at a time).
- The guard is installed through httpx's public interfaces: :class:`GuardedTransport` is
  an ``httpx.AsyncBaseTransport`` around an ``httpcore.AsyncConnectionPool`` whose network
  backend is :class:`GuardedNetworkBackend`; :func:`check_guard` proves at startup that a
  request to a private address is refused. The backend's streams are asyncio's own
  (:class:`AsyncioStream`), read in large buffered runs rather than httpcore's 64 KB.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass

import httpcore
import httpx

from proxy.admission import FetchTicket
from proxy.content_coding import CappedDecoder
from proxy.errors import (
    OriginError,
    OriginTimeout,
    OriginUnreachable,
    ProxyError,
    SourceNotAllowed,
    TooLarge,
)
from proxy.sniff import Body
from proxy.source_url import DEFAULT_PORTS, MAX_URL_LENGTH, parse_source_url

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "thumbs-proxy/0.1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Ranges Python's ``is_global`` still calls global but that are not the public internet.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(net) for net in ("100.64.0.0/10", "192.0.0.0/24", "64:ff9b:1::/48", "2002::/16")
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
        if not self.host_allowed(parsed.host, port):
            raise SourceNotAllowed(f"host {parsed.host[:100]}:{port} is not in the allowed sources")
        return parsed

    def host_allowed(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        for entry in self.allowed_hosts:
            pattern, _, entry_port = entry.lower().rpartition(":") if _has_port(entry) else (entry.lower(), "", "")
            if entry_port and int(entry_port) != port:
                continue
            pattern = pattern.strip("[]")
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    def check_address(self, address: IPAddress) -> None:
        if not self.allow_private and not is_public_address(address):
            raise SourceNotAllowed(f"the source resolves to a non-public address ({address})")


def _has_port(entry: str) -> bool:
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isascii() and tail.isdigit() and (not head.startswith("[") or head.endswith("]"))


# What one read asks the socket for, and the stream buffer behind it. httpcore asks for 64 KB
# at a time; through anyio every read costs a cancel scope and a task lookup, which for a 2.8 MB
# source was ~45 reads and ~3.5 ms of CPU per fetch. Whole buffered runs cut that to a few.
READ_BYTES = 512 * 1024


class AsyncioStream(httpcore.AsyncNetworkStream):
    """httpcore's network stream over asyncio's own streams (uvloop's, under uvicorn).

    Reads return whatever is buffered, up to :data:`READ_BYTES` (never less than httpcore
    asked for); errors and timeouts are httpcore's, as its anyio backend maps them.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max(max_bytes, READ_BYTES))
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # The transport finishes closing on its own; waiting for a TLS peer's close_notify
        # here could hold a pool cleanup for as long as the peer likes.
        self._writer.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable":
            # An idle keep-alive connection that has data or EOF waiting is not reusable.
            return self._reader.at_eof() or bool(getattr(self._reader, "_buffer", b""))
        name = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        return self._writer.get_extra_info(name)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check every address against the policy, connect to a checked address."""

    def __init__(self, policy: SourcePolicy) -> None:
        self._policy = policy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        for address in addresses:
            self._policy.check_address(address)  # any bad answer refuses the whole name
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await _connect(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SourceNotAllowed("unix sockets are not sources")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect(
    address: str, port: int, seconds: float | None, local_address: str | None,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
) -> AsyncioStream:
    """A TCP connection to an already checked address (no name is resolved here)."""
    try:
        async with asyncio.timeout(seconds):
            reader, writer = await asyncio.open_connection(
                address, port, limit=READ_BYTES, local_addr=(local_address, 0) if local_address else None,
            )
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"connecting to {address}:{port} timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
    sock = writer.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return AsyncioStream(reader, writer)


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


# httpcore's exceptions and the httpx ones httpx's own transport maps them to.
_HTTPCORE_TO_HTTPX: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as httpx's (most specific first); ours (SourceNotAllowed) unchanged."""
    try:
        yield
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError,
            httpcore.UnsupportedProtocol) as exc:
        for core_type, httpx_type in _HTTPCORE_TO_HTTPX:
            if isinstance(exc, core_type):
                raise httpx_type(str(exc)) from exc
        raise  # pragma: no cover - every httpcore error type is in the table


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Iterable[bytes] | AsyncIterable[bytes]) -> None:
        assert isinstance(stream, AsyncIterable)  # the async pool always streams asynchronously
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            await closer()


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's public transport interface over an httpcore pool that dials through the guard."""

    def __init__(self, policy: SourcePolicy) -> None:
        self.backend = GuardedNetworkBackend(policy)
        # httpx's own defaults (DEFAULT_LIMITS, keep-alive 5 s), HTTP/1.1 only, no retries.
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=self.backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self.pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


async def check_guard() -> None:
    """Startup self-check: a request to a private address must be refused by the guard.

    Runs the same transport class the fetcher uses, with a strict policy that allows the
    target host (so only the address check can refuse it), against 127.0.0.1 on a port
    nobody listens on. Refused by the guard: fine, and no packet was sent. Anything else
    (a connection error means it dialled) and the proxy must not serve.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the request: nothing listens
    policy = SourcePolicy((f"127.0.0.1:{port}",), allow_private=False)
    transport = GuardedTransport(policy)
    outcome = "it answered"
    try:
        async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
            await client.get(f"http://127.0.0.1:{port}/")
    except SourceNotAllowed:
        return
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    raise RuntimeError(
        "the origin fetcher's private-address guard is not in effect (a request to "
        f"127.0.0.1:{port} was not refused by it; {outcome}); check the httpx/httpcore versions"
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
        self.transport = GuardedTransport(policy)
        self.decoded_bytes = 0  # bytes produced by content decoding, over the fetcher's life
        self.client = httpx.AsyncClient(
            transport=self.transport,
            timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
            follow_redirects=False,
            # Only identity: anything else an origin sends is undone under the cap, or refused.
            headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def fetch(self, source: str, ticket: FetchTicket | None = None) -> Body:
        """The body as the pipeline will see it; ``ticket`` learns the declared size early."""
        try:
            async with asyncio.timeout(self.total_timeout):
                return await self._fetch(source, ticket)
        except TimeoutError as exc:
            raise OriginTimeout(f"the origin did not answer within {self.total_timeout:g} s") from exc
        except httpx.TimeoutException as exc:
            raise OriginTimeout(f"the origin timed out ({type(exc).__name__})") from exc
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            raise OriginUnreachable(f"cannot connect to the origin: {exc}") from exc
        except httpx.HTTPError as exc:
            raise OriginError(f"origin transfer failed: {type(exc).__name__}") from exc

    async def _fetch(self, source: str, ticket: FetchTicket | None) -> Body:
        url = self.policy.check_url(source)
        for _ in range(self.max_redirects + 1):
            async with self.client.stream("GET", url) as response:
                if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                    url = self.policy.check_url(_join(url, response.headers["location"]))
                    continue
                if response.status_code != 200:
                    raise OriginError(f"the origin answered {response.status_code}")
                return await self._read_capped(response, ticket)
        raise OriginError(f"more than {self.max_redirects} redirects")

    async def _read_capped(self, response: httpx.Response, ticket: FetchTicket | None) -> Body:
        # Refused before a body byte is read: stacked or unknown codings.
        decoder = CappedDecoder(response.headers.get("content-encoding", ""), self.max_bytes)
        declared = response.headers.get("content-length", "")
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
        try:
            # The raw stream: httpx would otherwise inflate every coding, whole, before we see it.
            async for chunk in response.aiter_raw():
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
        del body[filled:]  # shorter than declared (h11 refuses such bodies anyway)
        # Leaving the stream context (on TooLarge too) closes the connection; nothing more is read.
        return body


def _join(url: httpx.URL, location: str) -> str:
    try:
        return str(url.join(location))
    except Exception as exc:  # a Location httpx cannot even join is the origin's fault
        raise OriginError("the origin redirected to an invalid location") from exc


def policy_from(allowed_sources: Sequence[str], allow_private: bool) -> SourcePolicy:
    return SourcePolicy(tuple(entry.strip() for entry in allowed_sources if entry.strip()), allow_private)


__all__ = [
    "MAX_URL_LENGTH", "GuardedTransport", "OriginFetcher", "ProxyError", "SourcePolicy", "check_guard",
    "is_public_address", "policy_from",
]
