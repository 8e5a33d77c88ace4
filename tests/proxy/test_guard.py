"""The connect-time guard through httpx's public interfaces, and the startup self-check."""

from __future__ import annotations

from collections.abc import Callable

import httpcore
import httpx
import pytest

from proxy import fetch
from proxy.errors import SourceNotAllowed
from proxy.fetch import GuardedNetworkBackend, GuardedTransport, OriginFetcher, SourcePolicy, check_guard
from tests.proxy.conftest import running
from tests.support import images
from tests.support.origin import Origin
from tests.support.servers import free_port
from thumbs.settings import Settings


def test_the_fetcher_uses_its_own_public_transport() -> None:
    fetcher = OriginFetcher(SourcePolicy(("x",), False), max_bytes=1, connect_timeout=1, total_timeout=1,
                            max_redirects=0)
    assert isinstance(fetcher.transport, GuardedTransport)
    assert isinstance(fetcher.transport, httpx.AsyncBaseTransport)
    assert isinstance(fetcher.transport.pool, httpcore.AsyncConnectionPool)
    assert isinstance(fetcher.transport.backend, GuardedNetworkBackend)


async def test_the_self_check_passes_with_the_guard_in_place() -> None:
    await check_guard()


async def test_startup_refuses_to_run_when_the_guard_would_not_refuse(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    """A broken install (here: the guard's address check skipped) must not serve at all."""
    monkeypatch.setattr(SourcePolicy, "check_address", lambda self, address: None)
    with pytest.raises(RuntimeError, match="private-address guard is not in effect"):
        await check_guard()
    with pytest.raises(RuntimeError, match="private-address guard"):
        async with running(make_settings()):
            pass  # pragma: no cover - the lifespan refuses before yielding


async def test_startup_refuses_when_the_transport_bypasses_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """A transport whose pool dials with a stock backend (the guard not wired in) is caught too."""
    original = GuardedTransport.__init__

    def unguarded(self: GuardedTransport, policy: SourcePolicy) -> None:
        original(self, policy)
        self.pool = httpcore.AsyncConnectionPool()

    monkeypatch.setattr(GuardedTransport, "__init__", unguarded)
    with pytest.raises(RuntimeError, match="ConnectError"):
        await check_guard()


async def test_httpcore_errors_come_out_as_httpx_errors() -> None:
    port = free_port()  # nothing listens: httpcore.ConnectError -> httpx.ConnectError -> 502
    transport = GuardedTransport(SourcePolicy((f"127.0.0.1:{port}",), allow_private=True))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
    strict = GuardedTransport(SourcePolicy((f"127.0.0.1:{port}",), allow_private=False))
    async with httpx.AsyncClient(transport=strict) as client:
        with pytest.raises(SourceNotAllowed):  # the guard's refusal passes through unchanged
            await client.get(f"http://127.0.0.1:{port}/")


async def test_the_transport_streams_real_responses(make_settings: Callable[..., Settings], origin: Origin,
                                                    unique) -> None:
    body = images.png(images.photo(64, 64))
    origin.add(unique("a.png"), body)
    host = origin.base_url.removeprefix("http://")
    transport = GuardedTransport(SourcePolicy((host,), allow_private=True))
    async with httpx.AsyncClient(transport=transport) as client, client.stream(
        "GET", origin.base_url + unique("a.png")
    ) as response:
        assert response.status_code == 200
        assert b"".join([chunk async for chunk in response.aiter_raw()]) == body


def test_httpx_and_httpcore_are_pinned_to_the_tested_ranges() -> None:
    from pathlib import Path

    pyproject = (Path(fetch.__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"httpx>=0.28,<0.29"' in pyproject and '"httpcore>=1.0.7,<2"' in pyproject
    assert httpx.__version__.startswith("0.28.") and httpcore.__version__.startswith("1.")
