"""Every origin connection comes from the guard's dial, and the startup self-check proves it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from proxy import fetch
from proxy.errors import OriginUnreachable, SourceNotAllowed
from proxy.fetch import GuardedDialer, OriginFetcher, SourcePolicy, check_guard
from tests.proxy.conftest import running
from tests.support import images
from tests.support.origin import Origin
from tests.support.servers import free_port
from thumbs.settings import Settings


def test_the_fetcher_dials_through_the_guard() -> None:
    fetcher = OriginFetcher(SourcePolicy(("x",), False), max_bytes=1, connect_timeout=1, total_timeout=1,
                            max_redirects=0)
    assert isinstance(fetcher.dial, GuardedDialer)
    assert fetcher.pool._dial is fetcher.dial


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


async def test_startup_refuses_when_the_pool_bypasses_the_guarded_dial(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetcher whose pool dials without the guard (the guard not wired in) is caught too."""
    original = OriginFetcher.__init__

    def unguarded(self: OriginFetcher, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]

        async def plain(scheme: str, host: str, port: int) -> object:
            return await fetch._connect(host, port, 1.0, None, host)

        self.pool._dial = plain  # type: ignore[assignment]

    monkeypatch.setattr(OriginFetcher, "__init__", unguarded)
    with pytest.raises(RuntimeError, match="OriginUnreachable"):
        await check_guard()


async def test_the_guard_refuses_before_dialling() -> None:
    port = free_port()  # nothing listens: a dial would be "unreachable", the guard refuses first
    strict = OriginFetcher(SourcePolicy((f"127.0.0.1:{port}",), allow_private=False), max_bytes=1024,
                           connect_timeout=1, total_timeout=2, max_redirects=0)
    lenient = OriginFetcher(SourcePolicy((f"127.0.0.1:{port}",), allow_private=True), max_bytes=1024,
                            connect_timeout=1, total_timeout=2, max_redirects=0)
    try:
        with pytest.raises(SourceNotAllowed):
            await strict.fetch(f"http://127.0.0.1:{port}/")
        with pytest.raises(OriginUnreachable):
            await lenient.fetch(f"http://127.0.0.1:{port}/")
    finally:
        await strict.close()
        await lenient.close()


async def test_the_fetcher_reads_real_responses(origin: Origin, unique) -> None:
    body = images.png(images.photo(64, 64))
    origin.add(unique("a.png"), body)
    host = origin.base_url.removeprefix("http://")
    fetcher = OriginFetcher(SourcePolicy((host,), allow_private=True), max_bytes=10_000_000, connect_timeout=2,
                            total_timeout=5, max_redirects=0)
    try:
        assert await fetcher.fetch(origin.base_url + unique("a.png")) == body
    finally:
        await fetcher.close()


def test_httptools_is_pinned_to_the_tested_range() -> None:
    from pathlib import Path

    import httptools

    pyproject = (Path(fetch.__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"httptools>=0.6,<0.10"' in pyproject
    assert httptools.__version__.split(".")[0] == "0"
