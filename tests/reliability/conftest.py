"""Fixtures for the reliability battery: a fake network on loopback, listeners that count accepts.

No real DNS or outside network exists here, and tests may only send traffic to loopback. So a
``FakeNetwork`` replaces the two seams the fetch policy stands on: name resolution
(``socket.getaddrinfo``) and the final dial (``proxy.fetch._connect``, the layer *under* the
guarded backend). Names resolve to whatever a test says, possibly changing per lookup; every
dial is recorded; dials to a "public" address the test mapped go to a loopback origin, dials
to loopback go through for real (so a ``Listener`` can count them), and anything else is
refused without touching the network.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis

from library_api.migrate import run_migrations
from proxy import fetch as guarded_fetch
from proxy.errors import OriginUnreachable
from tests.conftest import PG_ADMIN_URL
from tests.proxy.conftest import proxy, redis_settings
from tests.support.pg import create_database, drop_database
from tests.support.servers import free_port
from thumbs.settings import Settings

# Public addresses (is_global) that the fake network routes to loopback servers.
PUBLIC_A = "93.184.216.34"
PUBLIC_B = "151.101.1.69"

__all__ = ["proxy", "redis_settings"]  # the proxy suite's fixtures, reused here

Answer = Sequence[str] | Callable[[int], Sequence[str]]


class Listener:
    """A raw TCP listener that accepts, counts and closes: the "private target" of an attack."""

    def __init__(self, addresses: Sequence[str], port: int) -> None:
        self.port = port
        self.accepts = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port))
            sock.listen(64)
            sock.settimeout(0.1)
            self._sockets.append(sock)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self._sockets]
        for thread in self._threads:
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.accepts += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in self._sockets:
            sock.close()


class FakeNetwork:
    """Programmable DNS plus a dial log; see the module docstring."""

    def __init__(self) -> None:
        self.names: dict[str, Answer] = {}
        self.lookups: dict[str, int] = {}
        self.routes: dict[str, int] = {}  # public address -> loopback port actually dialled
        self.dials: list[tuple[str, int]] = []
        self.refused_dials: list[tuple[str, int]] = []

    def resolve(self, name: str, answer: Answer) -> None:
        self.names[name.lower()] = answer

    def route(self, public_address: str, loopback_port: int) -> None:
        self.routes[public_address] = loopback_port

    def dialled(self, address: str) -> bool:
        return any(host == address for host, _ in self.dials)

    def getaddrinfo(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host or "")
            answer = self.names.get(name.lower().rstrip("."))
            if answer is None:
                return real(host, port, *args, **kwargs)
            count = self.lookups.get(name.lower(), 0) + 1
            self.lookups[name.lower()] = count
            addresses = answer(count) if callable(answer) else answer
            infos = []
            for address in addresses:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sockaddr: tuple[Any, ...] = (address, int(port or 0), 0, 0) if family == socket.AF_INET6 else (
                    address, int(port or 0))
                infos.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            if not infos:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return infos

        return fake

    def connect(self, real: Callable[..., Any]) -> Callable[..., Any]:
        """The final dial of the guarded backend (``proxy.fetch._connect``), to checked addresses only."""
        network = self

        async def fake(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
            network.dials.append((host, port))
            if host in network.routes:
                return await real("127.0.0.1", network.routes[host], *args, **kwargs)
            try:
                loopback = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                loopback = None
            if loopback is not None and (loopback.is_loopback or loopback.is_unspecified or (
                    isinstance(loopback, ipaddress.IPv6Address) and loopback.ipv4_mapped is not None
                    and loopback.ipv4_mapped.is_loopback)):
                return await real(host, port, *args, **kwargs)
            # Never leave the machine: an unmapped outside address is "unreachable".
            network.refused_dials.append((host, port))
            raise OriginUnreachable(f"cannot connect to the origin: fake network: no route to {host}")

        return fake


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    fake = FakeNetwork()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo(socket.getaddrinfo))
    # The dial under the guard: anything not routed to loopback here never leaves the machine.
    monkeypatch.setattr(guarded_fetch, "_connect", fake.connect(guarded_fetch._connect))
    return fake


def _bind_all(addresses: Sequence[str]) -> Listener:
    last: OSError | None = None
    for _ in range(20):
        try:
            return Listener(addresses, free_port())
        except OSError as exc:  # the port was free on 127.0.0.1 but taken on another address
            last = exc
    raise RuntimeError(f"no common free port for {addresses}: {last}")


LOOPBACK_ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.1.2.3", "127.255.255.254")


@pytest.fixture
def target() -> Iterator[Listener]:
    """The "private service" an attacker wants reached, on several 127/8 addresses and ::1."""
    addresses = list(LOOPBACK_ADDRESSES)
    if socket.has_ipv6:
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
            addresses.append("::1")
        except OSError:
            pass
    listener = _bind_all(addresses)
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture
def strict_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Production policy: private sources off, negative cache off so each case is fresh."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"allow_private_sources": False, "negative_ttl": 0}
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
def unique() -> Callable[[str], str]:
    tag = uuid.uuid4().hex[:8]
    return lambda name: f"/{tag}/{name}"


class ThrowawayRedis:
    """A private redis-server on a free port, with an append-only file so a restart keeps data."""

    def __init__(self, directory: Any, binary: str = "/usr/bin/redis-server", extra: Sequence[str] = ()) -> None:
        self.directory = directory
        self.binary = binary
        self.extra = list(extra)  # more options; a later one wins over the same option before it
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.directory), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError("throwaway redis did not start") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def throwaway_redis(tmp_path: Any) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _in_thread(function: Callable[[], Any]) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            function()
        except BaseException as exc:  # re-raised below, on the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def security_pg() -> Iterator[str]:
    """A private, migrated PostgreSQL database for this module."""
    name = f"thumbs_rel_{uuid.uuid4().hex[:10]}"
    _in_thread(lambda: create_database(PG_ADMIN_URL, name))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        _in_thread(lambda: run_migrations(Settings(_env_file=None, database_url=url)))
        yield url
    finally:
        _in_thread(lambda: drop_database(PG_ADMIN_URL, name))
