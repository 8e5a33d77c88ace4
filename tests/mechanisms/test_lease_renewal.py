"""One origin fetch across processes for an origin slower than the single-flight lease.

The holder must renew its Redis lease while it works; if it did not, the lease would lapse
mid-fetch, a waiter in the other process would take it over and fetch the origin again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from proxy.urls import cache_key, thumbnail_path
from proxy.variants import THUMB
from tests.support import images
from tests.support.origin import Origin
from tests.support.proxy_process import proxy_process
from tests.support.wait import wait_until
from thumbs.settings import Settings

LEASE_MS = 1000
ORIGIN_SECONDS = 3.0  # three leases long: without renewal the lease lapses twice over

FACTORY = "tests.mechanisms.lease_app:create"


async def test_an_origin_slower_than_the_lease_is_fetched_once_across_two_processes(
    redis_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str], tmp_path: Path
) -> None:
    settings = redis_settings(negative_ttl=0)
    assert settings.redis_url
    source = origin.add(unique("slow.jpg"), images.jpeg(images.photo(400, 300)), delay=ORIGIN_SECONDS)
    path = thumbnail_path(source, settings.secret)
    lock = f"{settings.redis_prefix}lock:{cache_key(source, THUMB)}"
    env = {"THUMBS_TEST_LEASE_MS": str(LEASE_MS)}
    redis = aioredis.Redis.from_url(settings.redis_url)
    samples: list[tuple[float, object, int]] = []  # (time, holder token, milliseconds left)
    try:
        with proxy_process(settings, tmp_path / "a", factory=FACTORY, extra_env=env) as (first, _), \
                proxy_process(settings, tmp_path / "b", factory=FACTORY, extra_env=env) as (second, _):
            async with httpx.AsyncClient(timeout=30) as client:
                holder = asyncio.create_task(client.get(first + path))
                await wait_until(lambda: redis.exists(lock), what="process A to take the lease")
                waiters = [asyncio.create_task(client.get(second + path)) for _ in range(4)]
                while not holder.done():
                    samples.append((time.monotonic(), await redis.get(lock), int(await redis.pttl(lock))))
                    await asyncio.sleep(0.05)
                responses = [await holder, *await asyncio.gather(*waiters)]
    finally:
        await redis.aclose()
    assert [r.status_code for r in responses] == [200] * 5
    assert len({r.content for r in responses}) == 1
    assert origin.hits[unique("slow.jpg")] == 1  # one fetch, though the fetch outlived the lease three times
    assert {r.headers["x-thumb-tier"] for r in responses[1:]} == {"redis"}  # B waited for A's result
    held = [(at, token, left) for at, token, left in samples if token is not None]
    assert len({token for _, token, _ in held}) == 1, "the lease changed hands mid-fetch"
    assert held[-1][0] - held[0][0] > 2.5 * LEASE_MS / 1000, "the lease was not held past its own length"
    renewals = sum(1 for (_, _, before), (_, _, after) in itertools.pairwise(held) if after > before)
    assert renewals >= 1, f"the lease was never renewed (samples: {held})"
