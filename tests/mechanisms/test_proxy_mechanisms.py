"""Proxy mechanisms the README promises, each with a test that fails when the mechanism is removed.

- the memory tier is bounded by bytes and evicts the least recently used thumbnail (real sizes);
- a source that failed is answered by a second worker from the failure memory shared in Redis;
- warm-ups that meet a full processing pool are retried (waiting and queued), never dropped.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from proxy.urls import cache_key
from proxy.variants import THUMB
from tests.proxy.conftest import running
from tests.support import images
from tests.support.origin import Origin
from tests.support.wait import wait_until
from thumbs.settings import Settings

WARM_AUTH = {"Authorization": "Bearer warm-token"}


class ReferenceLRU:
    """What a byte-bounded LRU must hold: the model the real tier is checked against."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[str, int] = OrderedDict()

    @property
    def size(self) -> int:
        return sum(self.entries.values())

    def access(self, key: str, cost: int) -> str:
        """The tier a request must be answered from; updates the model like the real tier."""
        if key in self.entries:
            self.entries.move_to_end(key)
            return "memory"
        self.entries[key] = cost
        while self.size > self.capacity:
            self.entries.popitem(last=False)
        return "disk"


async def test_memory_tier_holds_a_few_real_thumbnails_bounded_by_bytes_in_lru_order(
    make_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str]
) -> None:
    sources = [origin.add(unique(f"lru{i}.jpg"), images.jpeg(images.photo(300, 200))) for i in range(5)]
    # Make them once (disk store), and learn their real sizes: about 4.4 KB each.
    async with running(make_settings()) as proxy:
        sizes = {}
        for source in sources:
            response = await proxy.thumb(source)
            assert response.status_code == 200 and response.headers["x-thumb-tier"] == "generated"
            sizes[source] = len(response.content)
    assert min(sizes.values()) > 3000
    # Room for exactly the first three: the fourth must push the least recently used one out.
    capacity = sum(sizes[source] for source in sources[:3])
    model = ReferenceLRU(capacity)
    s0, s1, s2, s3, s4 = sources
    # s0 is touched again before s3 arrives, so LRU evicts s1 where FIFO would evict s0.
    script = [s0, s1, s2, s0, s3, s0, s1, s4, s2, s0, s3]
    async with running(make_settings(memory_cache_bytes=capacity)) as proxy:
        memory = proxy.proxy.service.memory
        observed, expected, peak_entries = [], [], 0
        for source in script:
            expected.append(model.access(cache_key(source, THUMB), sizes[source]))
            response = await proxy.thumb(source)
            assert response.status_code == 200
            observed.append(response.headers["x-thumb-tier"])
            assert memory.size <= capacity, f"memory tier holds {memory.size} bytes, over its {capacity}"
            assert memory.size == model.size and len(memory) == len(model.entries)
            peak_entries = max(peak_entries, len(memory))
        assert observed == expected
        assert peak_entries == 3  # it really held several, so the bound was exercised, not trivially met
        assert observed[3] == "memory" and observed[5] == "memory"  # s0 survived s3 because it was recently used
        assert observed[6] == "disk"  # s1, the least recently used, was the one evicted
    assert all(origin.hits[unique(f"lru{i}.jpg")] == 1 for i in range(5))


async def test_a_second_worker_answers_a_known_bad_source_from_the_shared_failure_memory(
    redis_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str], tmp_path: Path
) -> None:
    settings = redis_settings(negative_ttl=60)
    source = origin.add(unique("not-an-image.jpg"), images.HTML, content_type="image/jpeg")
    async with running(settings) as first:
        failed = await first.thumb(source)
    assert failed.status_code == 415 and origin.hits[unique("not-an-image.jpg")] == 1
    # Another worker (or host): same Redis prefix, nothing in its memory or on its disk.
    elsewhere = settings.model_copy(update={"data_dir": tmp_path / "other-worker"})
    async with running(elsewhere) as second:
        answered = await second.thumb(source)
        again = await second.thumb(source)
    assert answered.status_code == 415 and answered.json() == failed.json()
    assert again.status_code == 415
    assert origin.hits[unique("not-an-image.jpg")] == 1  # the second worker never asked the origin


async def test_a_waiting_warm_up_is_retried_while_the_pool_is_full_not_dropped(
    make_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str]
) -> None:
    source = origin.add(unique("busy.jpg"), images.jpeg(images.photo(300, 200)))
    # One thread, one queue slot: while two blockers hold them, every other render is refused (503).
    async with running(make_settings(processing_threads=1, processing_queue=1)) as proxy:
        pool = proxy.proxy.service.pool
        release = threading.Event()
        blockers = [asyncio.create_task(pool.run(release.wait, 30)) for _ in range(2)]
        try:
            await wait_until(lambda: pool.in_flight == 2, what="the blockers to take every slot")
            warming = asyncio.create_task(proxy.proxy.warmer.warm([source], wait=True))
            await wait_until(lambda: pool.rejected >= 2 or warming.done(), what="the warm-up to meet the full pool")
            assert not warming.done(), warming.result()  # still trying, not given up
        finally:
            release.set()
            await asyncio.gather(*blockers)
        [outcome] = await asyncio.wait_for(warming, 30)
        assert outcome.ok, outcome
        assert await proxy.proxy.service.store.exists(cache_key(source, THUMB))


async def test_a_queued_warm_up_is_retried_after_a_full_pool_not_dropped(
    make_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str]
) -> None:
    source = origin.add(unique("queued-busy.jpg"), images.jpeg(images.photo(300, 200)))
    # negative_ttl=1: the queue's retry backoff is max(1 s, negative_ttl).
    settings = make_settings(processing_threads=1, processing_queue=1, negative_ttl=1)
    async with running(settings, warm_consumer=True) as proxy:
        pool = proxy.proxy.service.pool
        store = proxy.proxy.service.store
        release = threading.Event()
        blockers = [asyncio.create_task(pool.run(release.wait, 30)) for _ in range(2)]
        try:
            await wait_until(lambda: pool.in_flight == 2, what="the blockers to take every slot")
            accepted = await proxy.client.post("/warm", json={"sources": [source]}, headers=WARM_AUTH)
            assert accepted.status_code == 202 and len(accepted.json()["accepted"]) == 1
            await wait_until(lambda: pool.rejected >= 1, what="the queued warm-up to meet the full pool")
            assert not await store.exists(cache_key(source, THUMB))
        finally:
            release.set()
            await asyncio.gather(*blockers)
        await wait_until(lambda: store.exists(cache_key(source, THUMB)), 15, what="the retried warm-up")
        assert list(proxy.proxy.warmer.queue.parked) == []  # type: ignore[attr-defined]
