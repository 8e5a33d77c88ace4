"""Fetching source images from origins, under a policy that cannot be talked around.

- Only ``http``/``https`` URLs whose host is in ``THUMBS_ALLOWED_SOURCES`` (exact host,
  ``host:port``, or ``*.suffix``); an empty list allows nothing.
- Private, loopback, link-local, multicast, reserved and IPv4-mapped addresses are refused
  unless ``THUMBS_ALLOW_PRIVATE_SOURCES``. The check happens inside the connection: the
  network backend resolves the name, checks every address, and connects to the checked
  address itself, so there is no window for DNS rebinding between check and connect.
- Redirects are followed by hand (at most ``max_redirects``), each hop re-checked.
- A connect timeout and a total deadline; the body is streamed and cut off at
  ``max_source_bytes`` while reading.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpcore
import httpx

from proxy.errors import (
    OriginError,
    OriginTimeout,
    OriginUnreachable,
    ProxyError,
    SourceNotAllowed,
    TooLarge,
)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "thumbs-proxy/0.1"
MAX_URL_LENGTH = 4096

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

    def check_url(self, url: str) -> httpx.URL:
        """The parsed URL if it may be fetched; :class:`SourceNotAllowed` otherwise."""
        if len(url) > MAX_URL_LENGTH:
            raise SourceNotAllowed("source URL is too long")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise SourceNotAllowed("source is not a valid URL") from exc
        if parsed.scheme not in DEFAULT_PORTS:
            raise SourceNotAllowed("only http and https sources are allowed")
        if not parsed.host:
            raise SourceNotAllowed("source URL has no host")
        if parsed.userinfo:
            raise SourceNotAllowed("credentials in source URLs are not allowed")
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        if not self.host_allowed(parsed.host, port):
            raise SourceNotAllowed(f"host {parsed.host}:{port} is not in the allowed sources")
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
    return bool(sep) and tail.isdigit() and (not head.startswith("[") or head.endswith("]"))


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check every address against the policy, connect to a checked address."""

    def __init__(self, policy: SourcePolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

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
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
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
        await self._inner.sleep(seconds)


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
        transport = httpx.AsyncHTTPTransport(retries=0)
        # httpx has no dial hook; the pool is rebuilt with the guarded backend (same defaults).
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedNetworkBackend(policy),
        )
        self.client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def fetch(self, source: str) -> bytes:
        try:
            async with asyncio.timeout(self.total_timeout):
                return await self._fetch(source)
        except TimeoutError as exc:
            raise OriginTimeout(f"the origin did not answer within {self.total_timeout:g} s") from exc
        except httpx.TimeoutException as exc:
            raise OriginTimeout(f"the origin timed out ({type(exc).__name__})") from exc
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            raise OriginUnreachable(f"cannot connect to the origin: {exc}") from exc
        except httpx.HTTPError as exc:
            raise OriginError(f"origin transfer failed: {type(exc).__name__}") from exc

    async def _fetch(self, source: str) -> bytes:
        url = self.policy.check_url(source)
        for _ in range(self.max_redirects + 1):
            async with self.client.stream("GET", url) as response:
                if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                    url = self.policy.check_url(str(url.join(response.headers["location"])))
                    continue
                if response.status_code != 200:
                    raise OriginError(f"the origin answered {response.status_code}")
                return await self._read_capped(response)
        raise OriginError(f"more than {self.max_redirects} redirects")

    async def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise TooLarge(f"the source is {declared} bytes, over the {self.max_bytes} byte limit")
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > self.max_bytes:
                # Leaving the stream context closes the connection; nothing more is read.
                raise TooLarge(f"the source is over the {self.max_bytes} byte limit")
            chunks.append(chunk)
        return b"".join(chunks)


def policy_from(allowed_sources: Sequence[str], allow_private: bool) -> SourcePolicy:
    return SourcePolicy(tuple(entry.strip() for entry in allowed_sources if entry.strip()), allow_private)


__all__ = ["OriginFetcher", "ProxyError", "SourcePolicy", "is_public_address", "policy_from"]
