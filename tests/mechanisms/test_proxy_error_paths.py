"""The proxy's error paths answer in the JSON contract with the right status, never a 500 or a hang:
a name that does not resolve, an origin that never completes the TCP handshake, an unexpected
libvips failure, a full warm queue, and /warm bodies over the size limit.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pyvips

from proxy.urls import cache_key
from proxy.variants import THUMB
from tests.proxy.conftest import running
from tests.support import images
from tests.support.origin import Origin
from thumbs.settings import Settings

WARM_AUTH = {"Authorization": "Bearer warm-token"}


async def test_a_source_whose_name_does_not_resolve_is_502_origin_unreachable(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real = socket.getaddrinfo

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host) == "no-such-host.test":
            lookups.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    settings = make_settings(allowed_sources=["no-such-host.test"])
    async with running(settings) as proxy:
        response = await proxy.thumb("http://no-such-host.test/a.jpg")
        again = await proxy.thumb("http://no-such-host.test/a.jpg")
    assert response.status_code == 502, response.text
    assert response.json()["error"] == "origin_unreachable" and "resolve" in response.json()["detail"]
    assert response.headers["cache-control"] == "no-store"
    assert again.status_code == 502 and lookups == ["no-such-host.test"]  # remembered, not looked up again


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port whose accept queue is full: new connections never complete their handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(4):  # fill the (0 + 1)-long backlog, and then some: further SYNs are dropped
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_an_origin_that_never_accepts_the_connection_is_504_after_the_connect_timeout(
    make_settings: Callable[..., Settings], blackhole: int
) -> None:
    settings = make_settings(allowed_sources=[f"127.0.0.1:{blackhole}"], fetch_connect_timeout=0.5,
                             fetch_timeout=10.0)
    async with running(settings) as proxy:
        started = time.monotonic()
        response = await proxy.thumb(f"http://127.0.0.1:{blackhole}/a.jpg")
        elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.json()["error"] == "origin_timeout"
    assert elapsed < 5, f"took {elapsed:.1f} s: the connect timeout (0.5 s), not the whole-fetch one, must apply"


async def test_an_unexpected_libvips_error_is_422_not_a_500_and_is_remembered(
    make_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    source = origin.add(unique("vips-bug.jpg"), images.jpeg(images.photo(300, 200)))

    def broken_render(*_: object) -> object:
        raise pyvips.Error("vips_image_new: internal error (simulated)")

    monkeypatch.setattr("proxy.service.render", broken_render)
    async with running(make_settings()) as proxy:
        response = await proxy.thumb(source)
        again = await proxy.thumb(source)
        stored = await proxy.proxy.service.store.exists(cache_key(source, THUMB))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "undecodable" and "could not be processed" in response.json()["detail"]
    assert again.status_code == 422 and origin.hits[unique("vips-bug.jpg")] == 1  # negative-cached
    assert not stored
    assert any("unexpected failure" in record.getMessage() for record in caplog.records)


async def test_a_full_warm_queue_refuses_each_source_with_a_reason(
    make_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str]
) -> None:
    sources = [origin.add(unique(f"w{i}.jpg"), images.jpeg(images.photo(100, 100))) for i in range(3)]
    async with running(make_settings()) as proxy:
        proxy.proxy.warmer.queue.max_items = 2  # type: ignore[attr-defined]
        response = await proxy.client.post("/warm", json={"sources": sources}, headers=WARM_AUTH)
        depth = await proxy.proxy.warmer.queue.depth()
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == []
    assert [(r["source"], r["error"]) for r in body["refused"]] == [(s, "queue_unavailable") for s in sources]
    assert depth == 0  # all or nothing: no part of the call was queued


async def test_warm_bodies_over_the_limit_are_413_declared_or_streamed(make_settings: Callable[..., Settings]) -> None:
    from proxy.handlers import MAX_WARM_BODY

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit must hold while reading
        yield b'{"sources": ["'
        for _ in range(MAX_WARM_BODY // 65536 + 2):
            yield b"a" * 65536
        yield b'"]}'

    async with running(make_settings()) as proxy:
        declared = await proxy.client.post(
            "/warm", content=b"x" * (MAX_WARM_BODY + 1), headers={**WARM_AUTH, "content-type": "application/json"}
        )
        streamed = await proxy.client.post("/warm", content=chunked(), headers=WARM_AUTH)
        fine = await proxy.client.post("/warm", json={"sources": []}, headers=WARM_AUTH)
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "too_large"
    assert fine.status_code == 202
