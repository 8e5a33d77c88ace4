"""Origins that are slow, fail intermittently or return garbage: bounded retries, negative
caching, and no pile-up of waiting requests or connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from starlette.requests import Request
from starlette.responses import Response

from proxy.storage import DiskStore
from proxy.urls import cache_key
from proxy.variants import THUMB
from proxy.warm_queue import MemoryWarmQueue
from tests.proxy.conftest import running
from tests.support import images
from tests.support.origin import Origin
from tests.support.wait import wait_until
from thumbs.settings import Settings

WARM_AUTH = {"authorization": "Bearer warm-token"}


async def test_a_slow_origin_under_a_burst_is_fetched_once_and_then_remembered(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    slow = origin.add(unique("slow.jpg"), images.jpeg(images.solid(30, 30)), delay=3.0)
    many = [origin.add(unique(f"slow{index}.jpg"), images.jpeg(images.solid(30, 30)), delay=3.0)
            for index in range(20)]
    async with running(make_settings(fetch_timeout=0.5, negative_ttl=30)) as proxy:
        burst = await asyncio.gather(*(proxy.thumb(slow) for _ in range(40)),
                                     *(proxy.thumb(source) for source in many))
        assert {r.status_code for r in burst} == {504}
        assert {r.json()["error"] for r in burst} == {"origin_timeout"}
        again = await asyncio.gather(*(proxy.thumb(slow) for _ in range(40)))
        assert {r.status_code for r in again} == {504}
        service = proxy.proxy.service
        assert len(service.flights) == 0 and service.pool.in_flight == 0  # nothing left waiting
    assert origin.hits[unique("slow.jpg")] == 1  # 80 requests, one fetch
    assert all(origin.hits[source.removeprefix(origin.base_url)] == 1 for source in many)


async def test_an_intermittent_origin_is_retried_after_the_negative_ttl(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    body = images.jpeg(images.photo(200, 150))
    seen: list[int] = []

    async def flaky(_: Request) -> Response:
        seen.append(1)
        if len(seen) % 2:
            return Response(b"upstream hiccup", status_code=503)
        return Response(body, media_type="image/jpeg")

    source = origin.add_handler(unique("flaky.jpg"), flaky)
    async with running(make_settings(negative_ttl=1)) as proxy:
        failed_at = time.monotonic()
        first = await proxy.thumb(source)
        assert first.status_code == 502 and first.json()["error"] == "origin_error"
        remembered = await proxy.thumb(source)
        assert remembered.status_code == 502 and len(seen) == 1  # answered from the negative cache

        async def recovered() -> httpx.Response | None:
            response = await proxy.thumb(source)
            return response if response.status_code == 200 else None

        # Asking again and again inside the TTL gets the remembered 502 without touching the origin.
        response = await wait_until(recovered, 10, what="the negative entry to expire", every=0.05)
        waited = time.monotonic() - failed_at
        assert response.headers["x-thumb-tier"] == "generated"
    assert len(seen) == 2  # one failure, one success: every retry inside the TTL was answered from memory
    assert waited >= 1.0, f"the negative entry expired after {waited:.2f} s, before its 1 s TTL"


async def test_garbage_from_the_origin_is_a_remembered_4xx(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    garbage = {"html": images.HTML, "random": images.random_bytes(50_000), "empty": b"",
               "json": b'{"image": "nope"}', "jpeg-header-only": b"\xff\xd8\xff\xe0" + b"\0" * 100}
    sources = {name: origin.add(unique(name), body, content_type="image/jpeg") for name, body in garbage.items()}
    async with running(make_settings(negative_ttl=30)) as proxy:
        for name, source in sources.items():
            for _ in range(3):
                response = await proxy.thumb(source)
                assert response.status_code in (415, 422), (name, response.status_code)
                assert response.headers["cache-control"] == "no-store"  # the edge must not keep errors
    for name in garbage:
        assert origin.hits[unique(name)] == 1, name


async def test_warm_queue_retries_a_failing_origin_a_bounded_number_of_times(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    body = images.jpeg(images.photo(200, 150))
    recovering_calls: list[float] = []
    broken_calls: list[float] = []

    async def recovers_on_third(_: Request) -> Response:
        recovering_calls.append(time.monotonic())
        if len(recovering_calls) < 3:
            return Response(b"", status_code=502)
        return Response(body, media_type="image/jpeg")

    async def always_broken(_: Request) -> Response:
        broken_calls.append(time.monotonic())
        return Response(b"", status_code=500)

    recovering = origin.add_handler(unique("recovering.jpg"), recovers_on_third)
    broken = origin.add_handler(unique("broken.jpg"), always_broken)
    settings = make_settings(negative_ttl=0)  # backoff 1 s, 2 s, 4 s ... capped at 5 attempts
    async with running(settings, warm_consumer=True) as proxy:
        queue = proxy.proxy.warmer.queue
        assert isinstance(queue, MemoryWarmQueue)  # no redis_url: the in-process queue
        queue.backoff = 0.2  # same policy, shorter clock
        accepted = await proxy.client.post("/warm", json={"sources": [recovering, broken]}, headers=WARM_AUTH)
        assert accepted.status_code == 202 and len(accepted.json()["accepted"]) == 2
        store = DiskStore(settings.store_dir)
        await wait_until(lambda: queue.parked and store.path(cache_key(recovering, THUMB)).is_file(), 20,
                         what="warm retries to settle (one parked, one stored)")
        assert [source for source, _ in queue.parked] == [broken]
        assert await queue.depth() == 0
    assert len(recovering_calls) == 3
    assert len(broken_calls) == queue.max_attempts  # bounded: parked, not retried forever
