"""Redis stopped mid-run and started again; a worker SIGKILLed while holding the single-flight lease.

Both use private redis-servers or processes started here, never the shared ones' lifetimes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio
import yaml
from starlette.requests import Request
from starlette.responses import Response

from proxy.storage import DiskStore
from proxy.tiers import RedisTier
from proxy.urls import cache_key, thumbnail_path
from proxy.variants import THUMB
from proxy.warm_queue import RedisWarmQueue
from tests.proxy.conftest import running
from tests.reliability.conftest import ThrowawayRedis
from tests.support import images
from tests.support.origin import Origin
from tests.support.proxy_process import proxy_process
from tests.support.wait import wait_until
from tests.support.warm_queue import consume_for
from thumbs.settings import Settings

WARM_AUTH = {"authorization": "Bearer warm-token"}
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


async def test_redis_restart_mid_run_loses_and_duplicates_nothing(
    make_settings: Callable[..., Settings], origin: Origin, unique, throwaway_redis: ThrowawayRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One processing thread, so one warm-up at a time (the consumer's concurrency is the pool's
    # thread count): "the outage was mid-queue" must not depend on how many cores run the test.
    settings = make_settings(redis_url=throwaway_redis.url, redis_prefix="restart:", negative_ttl=0,
                             processing_threads=1)
    store = DiskStore(settings.store_dir)
    served = origin.add(unique("served.jpg"), images.jpeg(images.photo(300, 200)))
    during = origin.add(unique("during.jpg"), images.jpeg(images.photo(300, 200)))
    # After the first two, the origin holds its answers until the outage has been observed: it is
    # mid-queue by construction, not because the fetches were slow enough.
    later = threading.Event()
    queued = [origin.add(unique(f"q{index}.jpg"), images.jpeg(images.photo(160, 120)),
                         hold=later if index >= 2 else None)
              for index in range(12)]

    def stored() -> int:
        return sum(store.path(cache_key(source, THUMB)).is_file() for source in queued)

    try:
        async with running(settings, warm_consumer=True) as proxy:
            assert (await proxy.thumb(served)).status_code == 200
            accepted = await proxy.client.post("/warm", json={"sources": queued}, headers=WARM_AUTH)
            assert accepted.status_code == 202 and len(accepted.json()["accepted"]) == len(queued)
            await wait_until(lambda: stored() >= 2, 20, what="the first warmed thumbnails")
            throwaway_redis.kill()  # SIGKILL, mid-queue, with entries in flight

            hit = await proxy.thumb(served)
            assert hit.status_code == 200 and hit.headers["x-thumb-tier"] == "memory"
            fresh = await proxy.thumb(during)
            assert fresh.status_code == 200 and fresh.headers["x-thumb-tier"] == "generated"
            health = await proxy.client.get("/readyz")
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            refused = await proxy.client.post("/warm", json={"sources": [served]}, headers=WARM_AUTH)
            assert refused.status_code == 202  # the caller is told, per source, to come back later
            assert [r["error"] for r in refused.json()["refused"]] == ["queue_unavailable"]
            assert stored() < len(queued)  # the outage really was mid-queue
            later.set()

            # Restart only once the warm consumer itself has run into the outage.
            with caplog.at_level(logging.WARNING, logger="thumbs.proxy"):
                await wait_until(lambda: any("warm consumer: redis unavailable" in r.getMessage()
                                             for r in caplog.records), 20, what="the warm consumer to meet the outage")
            await asyncio.to_thread(throwaway_redis.start)  # same port, same append-only file
            await wait_until(lambda: stored() == len(queued), 40, what="the queue to drain after Redis came back")
            await wait_until(lambda: len(proxy.proxy.service.flights) == 0, 10, what="in-flight work")
            assert (await proxy.client.get("/readyz")).json()["status"] == "ok"
    finally:
        later.set()  # never leave the origin holding answers
    for source in queued:
        assert origin.hits[source.removeprefix(origin.base_url)] == 1, source  # none lost, none done twice
    assert origin.hits[unique("served.jpg")] == 1 and origin.hits[unique("during.jpg")] == 1


async def test_worker_killed_holding_the_lease_another_takes_over(
    redis_settings: Callable[..., Settings], origin: Origin, unique, tmp_path: Path
) -> None:
    settings = redis_settings(negative_ttl=0)
    body = images.jpeg(images.photo(400, 300))
    release = threading.Event()
    calls: list[float] = []

    async def stuck_once(_: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:  # the first fetch never finishes while its worker is alive
            await asyncio.to_thread(release.wait, 60)
        return Response(body, media_type="image/jpeg")

    source = origin.add_handler(unique("held.jpg"), stuck_once)
    path = thumbnail_path(source, settings.secret)
    try:
        with proxy_process(settings, tmp_path / "a") as (first, holder), \
                proxy_process(settings, tmp_path / "b") as (second, _):
            async with httpx.AsyncClient(timeout=60) as client:
                doomed = asyncio.create_task(client.get(first + path))
                await wait_until(lambda: len(calls) == 1, 20, what="worker A to start fetching")
                waiting = [asyncio.create_task(client.get(second + path)) for _ in range(6)]
                await wait_until(lambda: _cluster_waits(client, second), 20, what="B to wait on A's lease")
                assert len(calls) == 1  # B's requests wait on A's lease instead of fetching
                holder.send_signal(signal.SIGKILL)
                responses = await asyncio.gather(*waiting)
                killed = await asyncio.gather(doomed, return_exceptions=True)
    finally:
        release.set()
    assert isinstance(killed[0], httpx.HTTPError)  # A died mid-request
    assert [r.status_code for r in responses] == [200] * 6
    assert len({r.content for r in responses}) == 1 and responses[0].content.endswith(b"\xff\xd9")
    assert len(calls) == 2  # A's stuck fetch, then exactly one takeover by B


async def _cluster_waits(client: httpx.AsyncClient, base: str) -> float:
    """How many of this worker's flights waited on another worker's lease (its /metrics)."""
    text = (await client.get(base + "/metrics")).text
    match = re.search(r'^thumbs_proxy_coalesced_waits_total\{scope="cluster"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_compose_redis_under_memory_pressure_evicts_thumbnails_never_the_warm_queue(tmp_path: Path) -> None:
    """Redis as docker-compose.yml runs it, at its memory limit: cached thumbnails (with a TTL) go, queued work stays.

    With `allkeys-lru` the warm stream itself (no TTL, least recently touched) was evicted: every queued
    warm-up lost, and the consumer group with it.
    """
    command = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    server = ThrowawayRedis(tmp_path, extra=[*command[1:], "--maxmemory", "3mb"])  # the limit, reached quickly
    server.start()
    queue = RedisWarmQueue(server.url, "pressure:")
    tier = RedisTier(server.url, "pressure:", ttl=3600)
    client = redis.asyncio.Redis.from_url(server.url)
    try:
        await queue.put([f"http://origin.test/{number}.jpg" for number in range(200)])
        for number in range(400):  # 8 MB of thumbnails into 3 MB
            await tier.set_raw(f"{number}", random.randbytes(20_000), ttl=3600)
        assert (await client.info("stats"))["evicted_keys"] > 0  # the limit was reached
        assert await client.xlen("pressure:warm") == 200
    finally:
        await client.aclose()
        await queue.close()
        await tier.close()
        server.kill()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru"])
async def test_the_warm_consumer_warns_when_redis_may_evict_its_queue(
    tmp_path: Path, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = ThrowawayRedis(tmp_path, extra=["--maxmemory-policy", policy])
    server.start()
    queue = RedisWarmQueue(server.url, "policy:", block_ms=100)
    try:
        with caplog.at_level(logging.WARNING, logger="thumbs.proxy"):
            await consume_for(queue, 0.5)
    finally:
        await queue.close()
        server.kill()
    warned = [r for r in caplog.records if "may evict the warm queue" in r.getMessage()]
    assert len(warned) == (1 if policy.startswith("allkeys") else 0)
