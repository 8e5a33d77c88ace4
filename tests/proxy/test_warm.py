"""POST /warm and the warm queues (in-process and Redis Stream)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from proxy.errors import OriginError, UnsupportedType
from proxy.service import Found
from proxy.urls import ThumbnailRequest, cache_key, thumbnail_url
from proxy.variants import CELL, THUMB
from proxy.warm_queue import WAITED_TAG, MemoryWarmQueue, RedisWarmQueue
from proxy.warm_types import WarmOutcome
from tests.proxy.conftest import Running, running
from tests.support import images
from tests.support.origin import Origin
from tests.support.servers import free_port
from tests.support.wait import wait_until
from tests.support.warm_queue import consume_for
from thumbs.settings import Settings

AUTH = {"Authorization": "Bearer warm-token"}


async def test_warm_requires_the_token(proxy: Running, make_settings: Callable[..., Settings]) -> None:
    body: dict[str, list[str]] = {"sources": []}
    missing = await proxy.client.post("/warm", json=body)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    wrong = await proxy.client.post("/warm", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    async with running(make_settings(warm_token="")) as tokenless:
        # No usable bearer credentials is 401; a token where none is accepted is 403 (httpkit.auth).
        for header, status in (("Bearer ", 401), ("Bearer warm-token", 403)):
            refused = await tokenless.client.post("/warm", json=body, headers={"Authorization": header})
            assert refused.status_code == status


async def test_warm_validates_the_body(proxy: Running) -> None:
    bad_json = await proxy.client.post("/warm", content=b"{nope", headers={**AUTH, "content-type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "bad_request"
    plain = {**AUTH, "content-type": "text/plain"}
    not_json = await proxy.client.post("/warm", content=b'{"sources": []}', headers=plain)
    assert not_json.status_code == 415 and not_json.json()["error"] == "unsupported_media_type"
    not_strings = await proxy.client.post("/warm", json={"sources": [1, 2]}, headers=AUTH)
    assert not_strings.status_code == 400
    too_many = await proxy.client.post("/warm", json={"sources": ["http://x/a.jpg"] * 501}, headers=AUTH)
    assert too_many.status_code == 413
    bad_wait = await proxy.client.post("/warm", json={"sources": [], "wait": "yes"}, headers=AUTH)
    assert bad_wait.status_code == 400


async def test_warm_202_accepts_and_refuses_with_reasons(make_settings: Callable[..., Settings], origin: Origin,
                                                         unique) -> None:
    settings = make_settings()
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(400, 300)))
    by_url = origin.add(unique("b.jpg"), images.jpeg(images.photo(400, 300)))
    thumb_url = thumbnail_url(by_url, settings.secret, settings.public_base_url)
    forged = thumbnail_url(by_url, "wrong-secret", settings.public_base_url)
    sources = [source, thumb_url, "http://img.example.com/x.jpg", forged, "ftp://x/y.jpg"]
    async with running(settings, warm_consumer=True) as proxy:
        response = await proxy.client.post("/warm", json={"sources": sources}, headers=AUTH)
        assert response.status_code == 202
        body = response.json()
        assert body["accepted"] == [
            {"source": source, "key": cache_key(source, THUMB)},
            {"source": thumb_url, "key": cache_key(by_url, THUMB)},
        ]
        assert [(r["source"], r["error"]) for r in body["refused"]] == [
            ("http://img.example.com/x.jpg", "source_not_allowed"),
            (forged, "bad_signature"),
            ("ftp://x/y.jpg", "source_not_allowed"),
        ]
        store = proxy.proxy.service.store
        await wait_until(lambda: store.exists(cache_key(source, THUMB)))
        await wait_until(lambda: store.exists(cache_key(by_url, THUMB)))
    async with running(settings) as proxy:  # first view after a restart: a disk hit
        assert (await proxy.thumb(source)).headers["x-thumb-tier"] == "disk"
    assert origin.hits[unique("a.jpg")] == 1 and origin.hits[unique("b.jpg")] == 1


async def test_warm_wait_reports_size_and_colour(proxy: Running, origin: Origin, unique) -> None:
    good = origin.add(unique("a.png"), images.png(images.solid(640, 320, (18, 52, 86))))
    bad = origin.add(unique("b.jpg"), images.HTML)
    path = proxy.path(good)
    response = await proxy.client.post(
        "/warm", json={"sources": [good, path, bad], "wait": True}, headers=AUTH
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0] == {"source": good, "ok": True, "error": None, "detail": None,
                          "width": 640, "height": 320, "color": "#123456"}
    assert results[1]["ok"] and results[1]["source"] == path and results[1]["width"] == 640
    assert results[2]["ok"] is False and results[2]["error"] == "unsupported_type"
    assert await proxy.proxy.service.store.exists(cache_key(good, THUMB))
    assert origin.hits[unique("a.png")] == 1


async def test_warmer_in_process_client(proxy: Running, origin: Origin, unique) -> None:
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(300, 600)))
    [outcome] = await proxy.proxy.warmer.warm([source], wait=True)
    assert outcome.ok and (outcome.width, outcome.height) == (300, 600)
    assert outcome.color is not None and outcome.color.startswith("#")
    [queued] = await proxy.proxy.warmer.warm([source], wait=False)
    assert queued.ok


async def test_memory_queue_retries_then_parks() -> None:
    queue = MemoryWarmQueue(max_attempts=3, backoff=0.01)
    calls: list[str] = []

    async def handle(source: str) -> WarmOutcome:
        calls.append(source)
        if source.startswith("flaky"):
            raise OriginError("the origin answered 503")
        if source == "broken":
            raise UnsupportedType("not an image")
        return WarmOutcome(source, True)

    answered: list[tuple[str, str | None, WarmOutcome]] = []

    async def finished(source: str, tag: str | None, outcome: WarmOutcome) -> None:
        answered.append((source, tag, outcome))

    await queue.put(["flaky", "broken", "fine"])
    await queue.put(["flaky-waited"], tags=[WAITED_TAG + "call"])
    consumer = asyncio.create_task(queue.consume(handle, 2, finished))
    try:
        await wait_until(lambda: len(queue.parked) == 1)
    finally:
        consumer.cancel()
    assert calls.count("flaky") == 3  # retried, then parked
    # A caller waits on this one: its first failure is the answer, not a retry after a backoff.
    assert calls.count("flaky-waited") == 1
    [(_, tag, outcome)] = [item for item in answered if item[0] == "flaky-waited"]
    assert tag == WAITED_TAG + "call" and not outcome.ok and outcome.error == "origin_error"
    assert calls.count("broken") == 1  # permanent: not retried
    assert calls.count("fine") == 1
    assert await queue.depth() == 0


async def test_redis_stream_consumes_and_acknowledges(redis_settings: Callable[..., Settings], origin: Origin,
                                                      unique) -> None:
    settings = redis_settings()
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(400, 300)))
    async with running(settings, warm_consumer=True) as proxy:
        response = await proxy.client.post("/warm", json={"sources": [source]}, headers=AUTH)
        assert response.status_code == 202 and len(response.json()["accepted"]) == 1
        await wait_until(lambda: proxy.proxy.service.store.exists(cache_key(source, THUMB)))
        queue = proxy.proxy.warmer.queue
        assert isinstance(queue, RedisWarmQueue)
        await wait_until(lambda: _pending_is(queue, 0))
        assert await queue.depth() == 0


async def _pending_is(queue: RedisWarmQueue, count: int) -> bool:
    info = await queue.client.xpending(queue.stream, queue.GROUP)
    return int(info["pending"]) == count


async def test_redis_stream_retries_parks_and_claims_from_dead_consumers(redis_settings: Callable[..., Settings],
                                                                         ) -> None:
    settings = redis_settings()
    assert settings.redis_url
    queue = RedisWarmQueue(settings.redis_url, settings.redis_prefix, max_attempts=3, backoff=0.02,
                           claim_idle_ms=100, block_ms=50)
    calls: list[str] = []

    async def handle(source: str) -> WarmOutcome:
        calls.append(source)
        if source.startswith("flaky"):
            raise OriginError("the origin answered 503")
        return WarmOutcome(source, True)

    try:
        await queue.put(["flaky", "orphan"])
        await queue.put(["flaky-waited"], tags=[WAITED_TAG + "call"])
        # A consumer that read "orphan" (and "flaky") and died without acknowledging.
        await queue._ensure_group()
        await queue.client.xreadgroup(queue.GROUP, "dead-consumer", {queue.stream: ">"}, count=10)
        consumer = asyncio.create_task(queue.consume(handle, 2))
        try:
            await wait_until(lambda: queue.client.xlen(queue.parked_stream))
            await wait_until(lambda: _pending_is(queue, 0))
        finally:
            consumer.cancel()
        assert calls.count("orphan") == 1
        assert calls.count("flaky") == 3
        assert calls.count("flaky-waited") == 1  # answered at once: the backfill waits on it
        parked = await queue.client.xrange(queue.parked_stream)
        assert parked is not None
        [(_, fields)] = parked
        assert fields is not None  # None only for an entry deleted after it was read
        assert fields[b"source"] == b"flaky" and fields[b"attempts"] == b"3"
        assert await queue.client.zcard(queue.retry_set) == 0
    finally:
        await queue.close()


async def test_redis_queue_down_refuses_cleanly(make_settings: Callable[..., Settings], origin: Origin,
                                                unique) -> None:
    from tests.support.servers import free_port

    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(100, 100)))
    async with running(settings) as proxy:
        response = await proxy.client.post("/warm", json={"sources": [source]}, headers=AUTH)
        assert response.status_code == 202
        assert response.json()["accepted"] == []
        assert response.json()["refused"][0]["error"] == "queue_unavailable"


async def test_lease_keys_are_prefixed(redis_settings: Callable[..., Settings], origin: Origin, unique) -> None:
    settings = redis_settings()
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(100, 100)))
    async with running(settings) as proxy:
        assert (await proxy.thumb(source)).status_code == 200
    assert settings.redis_url
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=settings.redis_prefix + "*")]
        assert keys and all(key.startswith(settings.redis_prefix.encode()) for key in keys)
        ttl = await client.ttl(f"{settings.redis_prefix}thumb:{cache_key(source, THUMB)}")
        assert 0 < ttl <= settings.redis_ttl
    finally:
        await client.aclose()


async def test_a_warm_up_cancelled_between_variants_never_downloads_the_source_again(
    make_settings: Callable[..., Settings], origin: Origin, unique, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown cancels the warm consumer while a variant's flight has not started: that flight
    runs on without its caller. It used to find the held source dropped by the cancelled warm-up
    and download it again (CI: test_warm_202 counted 2 origin fetches, about 1 run in 12)."""
    source = origin.add(unique("variants.jpg"), images.jpeg(images.photo(400, 300)))
    async with running(make_settings()) as proxy:
        service = proxy.proxy.service
        cell_may_start = asyncio.Event()
        lower_tiers = service._lower_tiers

        async def held_back(key: str) -> Found | None:
            if key == cache_key(source, CELL):
                await cell_may_start.wait()
            return await lower_tiers(key)

        monkeypatch.setattr(service, "_lower_tiers", held_back)
        warming = asyncio.create_task(
            service.ensure_stored(ThumbnailRequest(source, THUMB), with_variants=(CELL,))
        )
        await wait_until(lambda: service.flights.waiting(cache_key(source, CELL)) is not None)
        warming.cancel()  # the shutdown
        await asyncio.gather(warming, return_exceptions=True)
        cell_may_start.set()
        await wait_until(lambda: service.store.exists(cache_key(source, CELL)))
        assert origin.hits[unique("variants.jpg")] == 1


async def test_consumer_backs_off_and_logs_once_while_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    """An outage of minutes must not be a warning per second: the pause doubles to 5 s, one line a minute."""
    queue = RedisWarmQueue(f"redis://127.0.0.1:{free_port()}/0", "thumbs-test-down:")
    with caplog.at_level(logging.WARNING, logger="thumbs.proxy"):
        await consume_for(queue, 4.0)
    await queue.close()
    warnings = [r for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert len(warnings) == 1  # was 4, one per 1 s retry
