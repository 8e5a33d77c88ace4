"""Misses whose every requester left are dropped before they cost a render (fast scrolls)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from starlette.applications import Starlette

import proxy.service
from proxy.app import Proxy, create_proxy
from proxy.pipeline import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_SOURCE_SIDE, Rendered
from proxy.processing import ProcessingPool
from proxy.singleflight import Flights
from proxy.sniff import Body
from proxy.urls import cache_key, thumbnail_path
from proxy.variants import THUMB, Variant
from tests.support import images
from tests.support.origin import Origin
from tests.support.servers import serve_in_thread
from tests.support.wait import wait_until
from thumbs.configs import proxy_config
from thumbs.settings import Settings


class Renders:
    """Counts real renders (calls that reached libvips on a pool thread)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._render = proxy.service.render

    # render's own signature, so the stand-in is checked against what proxy.service calls.
    def __call__(
        self, data: Body, variant: Variant, max_pixels: int, max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
        max_side: int = DEFAULT_MAX_SOURCE_SIDE,
    ) -> Rendered:
        with self._lock:
            self.count += 1
        return self._render(data, variant, max_pixels, max_decode_bytes, max_side)


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Renders:
    counter = Renders()
    monkeypatch.setattr(proxy.service, "render", counter)
    return counter


@contextmanager
def served(settings: Settings) -> Iterator[tuple[Proxy, str]]:
    """The proxy on a real port (uvicorn in a thread), and the Proxy to inspect."""
    started = create_proxy(proxy_config(settings), warm_consumer=False)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with started.component.lifespan():
            yield

    app = Starlette(routes=list(started.component.routes), lifespan=lifespan,
                    exception_handlers=dict(started.component.exception_handlers))
    with serve_in_thread(app) as base:
        yield started, base


@asynccontextmanager
async def leaving_clients(base: str, path: str, count: int) -> AsyncIterator[list[asyncio.StreamReader]]:
    """``count`` raw HTTP/1.1 GETs that close their connections, unanswered, when the block ends."""
    port = int(base.rsplit(":", 1)[1])
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    for _, writer in streams:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: thumbs.test\r\n\r\n".encode())
        await writer.drain()
    try:
        yield [reader for reader, _ in streams]
    finally:
        for _, writer in streams:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def idle(started: Proxy) -> Callable[[], bool]:
    return lambda: len(started.service.flights) == 0 and started.service.pool.in_flight == 0


async def test_misses_everyone_left_never_reach_render(make_settings: Callable[..., Settings], origin: Origin,
                                                       unique, renders: Renders) -> None:
    settings = make_settings(processing_threads=1)
    names = [unique(f"scrolled-{i}.jpg") for i in range(6)]
    body = images.jpeg(images.photo(400, 300))
    # The origin answers only once every flight was dropped, however slow the host is.
    held = threading.Event()
    sources = [origin.add(name, body, hold=held) for name in names]
    with served(settings) as (started, base):
        try:
            async with contextlib.AsyncExitStack() as stack:
                for source in sources:
                    await stack.enter_async_context(leaving_clients(base, thumbnail_path(source, settings.secret), 2))
                # Every flight's fetch is under way before its two clients leave.
                await wait_until(lambda: all(origin.hits[name] == 1 for name in names), what="every fetch started")
            await wait_until(lambda: started.service.flights.abandoned == 6, what="every flight dropped")
        finally:
            held.set()
        await wait_until(idle(started), what="abandoned flights unwound")
        assert renders.count == 0
        assert started.service.flights.abandoned == 6
        assert all(origin.hits[name] == 1 for name in names)
        for source in sources:
            assert not await started.service.store.exists(cache_key(source, THUMB))
        assert b"thumbs_proxy_abandoned_generations_total 6.0" in started.metrics.render()
        # Not negative-cached: the next view of a dropped thumbnail makes it.
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(base + thumbnail_path(sources[0], settings.secret))
        assert response.status_code == 200
        assert response.headers["x-thumb-tier"] == "generated"
        assert renders.count == 1
        assert origin.hits[names[0]] == 2


async def test_a_client_that_stays_gets_its_thumbnail(make_settings: Callable[..., Settings], origin: Origin,
                                                      unique, renders: Renders) -> None:
    settings = make_settings(processing_threads=1)
    name = unique("shared.jpg")
    held = threading.Event()
    source = origin.add(name, images.jpeg(images.photo(400, 300)), hold=held)
    path = thumbnail_path(source, settings.secret)
    key = cache_key(source, THUMB)
    with served(settings) as (started, base):
        async with httpx.AsyncClient(timeout=30) as client:
            try:
                async with leaving_clients(base, path, 3):
                    await wait_until(lambda: origin.hits[name] == 1, what="the fetch started")
                    stayer = asyncio.ensure_future(client.get(base + path))
                    await wait_until(lambda: started.service.flights.coalesced == 3,
                                     what="the stayer joined the flight")
                # The three leavers' disconnects reached the flight while its fetch is held: only the stayer waits.
                await wait_until(lambda: started.service.flights.waiting(key) == 1,
                                 what="the leavers gone and the flight kept for the stayer")
            finally:
                held.set()
            response = await stayer
        assert response.status_code == 200
        assert response.headers["x-thumb-tier"] == "generated"
        await wait_until(idle(started), what="the flight finished")
    assert started.service.flights.abandoned == 0
    assert renders.count == 1
    assert origin.hits[name] == 1


async def test_a_warm_up_survives_its_page_viewers_leaving(make_settings: Callable[..., Settings], origin: Origin,
                                                           unique, renders: Renders) -> None:
    settings = make_settings(processing_threads=1)
    name = unique("warmed.jpg")
    held = threading.Event()
    source = origin.add(name, images.jpeg(images.photo(400, 300)), hold=held)
    key = cache_key(source, THUMB)
    with served(settings) as (started, base):
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": "Bearer warm-token"}) as client:
            try:
                async with leaving_clients(base, thumbnail_path(source, settings.secret), 3):
                    await wait_until(lambda: origin.hits[name] == 1, what="the fetch started")
                    warm = asyncio.ensure_future(
                        client.post(base + "/warm", json={"sources": [source], "wait": True}))
                    await wait_until(lambda: started.service.flights.coalesced == 3,
                                     what="the warm-up joined the flight")
                # The viewers' disconnects reached the flight while its fetch is held; the warm-up's pin keeps it.
                await wait_until(lambda: started.service.flights.waiting(key) == 0,
                                 what="the viewers gone and the flight kept for the warm-up")
            finally:
                held.set()
            response = await warm
        assert response.status_code == 200
        assert response.json()["results"][0]["ok"] is True
        assert await started.service.store.exists(cache_key(source, THUMB))
    assert started.service.flights.abandoned == 0
    assert renders.count == 3  # the thumbnail once, then the two cell variants the warm-up adds
    assert origin.hits[name] == 1  # all three from the one download


async def test_a_queued_render_everyone_left_is_cancelled_and_frees_its_slot() -> None:
    pool = ProcessingPool(1, 4)
    pool.start()
    release = threading.Event()
    ran: list[int] = []
    try:
        busy = asyncio.ensure_future(pool.run(release.wait, 10))  # holds the only thread
        flights: Flights[None] = Flights()
        waiter = asyncio.ensure_future(
            flights.run("k", lambda gate: pool.run(ran.append, 1, gate=gate), abandonable=True)
        )
        await wait_until(lambda: pool.in_flight == 2, what="the render queued")
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await wait_until(lambda: pool.in_flight == 1, what="the queued slot freed")
        assert flights.abandoned == 1 and len(flights) == 0
        release.set()
        assert await busy is True
        await wait_until(lambda: pool.in_flight == 0, what="the pool drained")
        assert ran == []
    finally:
        release.set()
        pool.close()


async def test_a_started_render_finishes_for_whoever_asks_next() -> None:
    pool = ProcessingPool(1, 4)
    pool.start()
    started, release = threading.Event(), threading.Event()

    def job() -> str:
        started.set()
        release.wait(10)
        return "thumbnail"

    try:
        flights: Flights[str] = Flights()
        waiter = asyncio.ensure_future(flights.run("k", lambda gate: pool.run(job, gate=gate), abandonable=True))
        await wait_until(started.is_set, what="the render started")
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert flights.abandoned == 0 and len(flights) == 1  # still running, not dropped
        later = asyncio.ensure_future(flights.run("k", lambda gate: pool.run(job, gate=gate)))
        release.set()
        assert await later == ("thumbnail", True)  # joined the started flight
        await wait_until(lambda: pool.in_flight == 0, what="the slot freed")
    finally:
        release.set()
        pool.close()
