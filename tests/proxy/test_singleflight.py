"""One origin fetch per missing thumbnail: within a process, across processes, after a crash."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from proxy.urls import cache_key, thumbnail_path
from proxy.variants import THUMB
from tests.proxy.conftest import Running, running
from tests.support import images
from tests.support.origin import Origin
from tests.support.proxy_process import proxy_process
from tests.support.wait import wait_until
from thumbs.settings import Settings


async def on_one_flight(proxy: Running, source: str, held: threading.Event, count: int) -> list[httpx.Response]:
    """``count`` requests for ``source`` while its origin is held; the origin answers once every one
    of them has joined the same flight, however slow the host."""
    requests = asyncio.gather(*(proxy.thumb(source) for _ in range(count)))
    try:
        await wait_until(lambda: proxy.proxy.service.flights.coalesced == count - 1,
                         what=f"{count} requests on one flight")
    finally:
        held.set()
    return await requests


async def test_concurrent_requests_in_one_process_fetch_once(make_settings: Callable[..., Settings],
                                                             origin: Origin, unique) -> None:
    held = threading.Event()
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(800, 600)), hold=held)
    async with running(make_settings()) as proxy:
        responses = await on_one_flight(proxy, source, held, 25)
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1
        assert proxy.proxy.service.flights.coalesced == 24
    assert origin.hits[unique("a.jpg")] == 1


async def test_concurrent_failures_are_shared_too(make_settings: Callable[..., Settings], origin: Origin,
                                                  unique) -> None:
    held = threading.Event()  # all 10 share the flight, so none is served from the negative cache
    source = origin.add(unique("bad.jpg"), images.HTML, hold=held)
    async with running(make_settings()) as proxy:
        responses = await on_one_flight(proxy, source, held, 10)
    assert {r.status_code for r in responses} == {415}
    assert origin.hits[unique("bad.jpg")] == 1


async def test_waiter_takes_over_when_the_lease_holder_dies(redis_settings: Callable[..., Settings],
                                                            origin: Origin, unique) -> None:
    settings = redis_settings()
    source = origin.add(unique("orphan.jpg"), images.jpeg(images.photo(300, 200)))
    assert settings.redis_url
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        # A holder that took the lease and died: nobody renews it, it expires in 400 ms.
        lock = f"{settings.redis_prefix}lock:{cache_key(source, THUMB)}"
        assert await client.set(lock, "dead-holder", nx=True, px=400)
        async with running(settings) as proxy:
            response = await proxy.thumb(source)
            assert response.status_code == 200
            assert response.headers["x-thumb-tier"] == "generated"
        assert await client.exists(lock) == 0  # released by the new holder
    finally:
        await client.aclose()
    assert origin.hits[unique("orphan.jpg")] == 1


async def test_two_processes_fetch_once(redis_settings: Callable[..., Settings], origin: Origin, unique,
                                        tmp_path: Path) -> None:
    settings = redis_settings()
    # The origin is slow, so both processes are certainly asking at the same time.
    source = origin.add(unique("shared.jpg"), images.jpeg(images.photo(800, 600)), delay=1.0)
    path = thumbnail_path(source, settings.secret)
    with proxy_process(settings, tmp_path / "host-a") as (first, _), \
            proxy_process(settings, tmp_path / "host-b") as (second, _):
        async with httpx.AsyncClient(timeout=30) as client:
            requests = [client.get(base + path) for base in (first, second) for _ in range(5)]
            responses = await asyncio.gather(*requests)
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    tiers = [r.headers["x-thumb-tier"] for r in responses]
    assert set(tiers) == {"generated", "redis"}  # host B got host A's result through Redis
    assert origin.hits[unique("shared.jpg")] == 1
