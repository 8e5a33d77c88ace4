"""Finding or making one thumbnail: memory -> Redis -> disk -> generate, single-flighted.

A hit in a lower tier fills the tiers above it. Generation (fetch, then the pipeline in the
processing pool) runs once per key per process, and once per key across processes when
Redis is configured; its failures go to the negative cache.

Memory is admitted before the download (:mod:`proxy.admission`): a place in the processing
pool first (503 + Retry-After without contacting the origin when there is none), then a
download ticket under the per-worker fetch budget, held until the render is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.admission import FetchBudget, SourceHold
from proxy.errors import Overloaded, ProxyError, Undecodable
from proxy.fetch import OriginFetcher
from proxy.gate import Dropped, StartGate
from proxy.metrics import ProxyMetrics
from proxy.negative import NegativeCache
from proxy.pipeline import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_SOURCE_SIDE, Rendered, render
from proxy.processing import PoolSlot, ProcessingPool
from proxy.singleflight import Coordinator, Flights, Leases
from proxy.sniff import Body
from proxy.storage import BlockingStore, Store
from proxy.thumbnail import Thumbnail
from proxy.tiers import MemoryLRU, RedisTier, StoreTier, Tier
from proxy.urls import ThumbnailRequest
from proxy.variants import Variant

log = logging.getLogger("thumbs.proxy")

MEMORY, REDIS, DISK, GENERATED = "memory", "redis", "disk", "generated"
# A fetched source whose render did not happen is kept this long for the retry.
HOLD_SECONDS = 5.0


@dataclass(frozen=True)
class Found:
    thumbnail: Thumbnail
    tier: str


@dataclass(frozen=True)
class Made:
    rendered: Rendered
    thumbnail: Thumbnail
    stored: bool  # already written to the store by the pool thread


def make_thumbnail(
    source: Body, variant: Variant, max_pixels: int, max_decode_bytes: int, max_side: int, key: str,
    store: BlockingStore | None,
) -> Made:
    """The pool thread's whole job for a miss: render, seal the entry and, for a store whose
    writes are blocking file I/O, write it there too (no second thread hop to store it)."""
    rendered = render(source, variant, max_pixels, max_decode_bytes, max_side)
    thumbnail = Thumbnail.create(rendered.data, rendered.width, rendered.height, rendered.color)
    stored = False
    if store is not None:
        try:
            store.put_blocking(key, thumbnail.pack())
            stored = True
        except OSError as exc:  # as StoreTier.put: logged, the thumbnail still served
            log.error("could not store thumbnail %s: %s", key, exc)
    return Made(rendered, thumbnail, stored)


class ThumbnailService:
    def __init__(
        self,
        *,
        fetcher: OriginFetcher,
        pool: ProcessingPool,
        memory: MemoryLRU,
        redis: RedisTier | None,
        leases: Leases | None,
        store: Store,
        negative: NegativeCache,
        metrics: ProxyMetrics,
        max_pixels: int,
        wait_limit: float,
        max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
        max_side: int = DEFAULT_MAX_SOURCE_SIDE,
        budget: FetchBudget | None = None,
        hold: SourceHold | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.pool = pool
        self.memory = memory
        self.redis = redis
        self.leases = leases
        self.store = store
        self.negative = negative
        self.metrics = metrics
        self.max_pixels = max_pixels
        self.max_decode_bytes = max_decode_bytes
        self.max_side = max_side
        self.wait_limit = wait_limit
        # Defaults bound nothing new (tests and tools that build a service by hand).
        self.budget = budget if budget is not None else FetchBudget(1_000_000, 1 << 62, fetcher.max_bytes, wait_limit)
        self.hold = hold if hold is not None else SourceHold(0, 0)  # (an empty hold is falsy)
        # Below memory, nearest first: Redis when configured, then the store.
        self.tiers: list[Tier] = [*([redis] if redis is not None else []), StoreTier(store)]
        self._blocking_store = store if isinstance(store, BlockingStore) else None
        self.flights: Flights[Found] = Flights(on_abandon=metrics.abandoned.inc)
        self.coordinator = Coordinator(leases, redis, wait_limit=wait_limit,
                                       on_wait=metrics.coalesced.labels("cluster").inc)
        # Sources being warmed in several variants: their bytes stay in the hold after each
        # render, so the next variant does not fetch the origin again.
        self._warming: Counter[str] = Counter()

    def cached(self, request: ThumbnailRequest) -> Found | None:
        """A memory hit, without awaiting anything; raises a locally remembered failure."""
        key = request.cache_key
        entry = self.memory.get(key)
        if entry is not None:
            return Found(entry, MEMORY)
        error = self.negative.get_local(key)
        if error is not None:
            raise error
        return None

    async def get(self, request: ThumbnailRequest, *, abandonable: bool = False) -> Found:
        """The thumbnail from the nearest tier, or made. ``abandonable``: this caller may be
        cancelled (its client left), and if every caller of the flight has, the work stops."""
        found = self.cached(request)
        if found is not None:
            return found
        return await self.generate(request, abandonable=abandonable)

    async def generate(self, request: ThumbnailRequest, *, abandonable: bool = False) -> Found:
        """The miss path of :meth:`get` (after :meth:`cached` returned None)."""
        found, joined = await self.flights.run(
            request.cache_key, lambda gate: self._resolve(request, gate), abandonable=abandonable
        )
        if joined:
            self.metrics.coalesced.labels("process").inc()
        return found

    async def _resolve(self, request: ThumbnailRequest, gate: StartGate) -> Found:
        """A shared tier, a remembered failure, or made once across processes (the coordinator)."""
        key = request.cache_key

        async def made_elsewhere() -> Found | None:
            found = await self._lower_tiers(key)
            if found is None and (error := await self.negative.get(key)) is not None:
                raise error
            return found

        async def make() -> Found:
            return Found(await self._generate(request, gate), GENERATED)

        found = await made_elsewhere()
        return found if found is not None else await self.coordinator.run(key, made_elsewhere, make)

    async def _lower_tiers(self, key: str) -> Found | None:
        """Walk the shared tiers nearest first; a hit fills the tiers above it (and memory)."""
        for depth, tier in enumerate(self.tiers):
            entry = await tier.get(key)
            if entry is not None:
                self.memory.put(key, entry)
                for above in self.tiers[:depth]:
                    await above.put(key, entry)
                return Found(entry, tier.name)
        return None

    async def _generate(self, request: ThumbnailRequest, gate: StartGate) -> Thumbnail:
        key = request.cache_key
        started = time.perf_counter()
        slot: PoolSlot | None = None
        try:
            # Admission before download: no place in the pool, no request to the origin.
            slot = self.pool.reserve()
            source, made, fetched = await self._fetch_and_render(request, gate, slot)
        except ProxyError as error:
            self.metrics.failures.labels(error.code).inc()
            if isinstance(error, Overloaded):
                self.metrics.pool_rejections.inc()
            await self.negative.put(key, error)
            raise
        except (Dropped, asyncio.CancelledError):
            raise
        except Exception as exc:  # a libvips or pipeline surprise is this image's problem, not a 500
            log.exception("unexpected failure generating %s", request.source)
            failure = Undecodable(f"the image could not be processed ({type(exc).__name__})")
            self.metrics.failures.labels(failure.code).inc()
            await self.negative.put(key, failure)
            raise failure from exc
        finally:
            if slot is not None:
                slot.release()  # no-op once the render took it
        done = time.perf_counter()
        self.metrics.generation_seconds.observe(done - fetched)
        rendered, thumbnail = made.rendered, made.thumbnail
        await self._keep(key, thumbnail, stored=made.stored)
        log.info(
            "generated thumbnail",
            extra={
                "source_host": _host(request.source),
                "fetch_ms": round((fetched - started) * 1000, 1),
                "render_ms": round((done - fetched) * 1000, 1),
                "source_bytes": len(source),
                "source_size": f"{rendered.width}x{rendered.height}",
                "output_size": f"{rendered.output_width}x{rendered.output_height}",
                "output_bytes": len(rendered.data),
                "key": key,
            },
        )
        return thumbnail

    async def _fetch_and_render(
        self, request: ThumbnailRequest, gate: StartGate, slot: PoolSlot
    ) -> tuple[Body, Made, float]:
        """The source, its thumbnail and when the download ended, under a fetch ticket."""
        started = time.perf_counter()
        async with self.budget.admit() as ticket:
            source = self.hold.take(request.source)
            if source is None:
                source = await self.fetcher.fetch(request.source, ticket)
                self.metrics.fetched_bytes.inc(len(source))
            ticket.downloaded(len(source))
            fetched = time.perf_counter()
            self.metrics.fetch_seconds.observe(fetched - started)
            try:
                made = await self.pool.run(
                    make_thumbnail, source, request.variant, self.max_pixels, self.max_decode_bytes, self.max_side,
                    request.cache_key, self._blocking_store, gate=gate, slot=slot,
                )
            except (Overloaded, Dropped, asyncio.CancelledError):
                # The download happened but the render did not: keep it for the retry.
                self.hold.put(request.source, source)
                raise
            if request.source in self._warming:
                self.hold.put(request.source, source)  # for the next variant of this warm-up
        return source, made, fetched

    async def _keep(self, key: str, thumbnail: Thumbnail, *, stored: bool = False) -> None:
        """The store first (the durable copy; ``stored``: the pool thread wrote it), then the
        nearer tiers, then memory."""
        for tier in reversed(self.tiers[:-1] if stored else self.tiers):
            await tier.put(key, thumbnail)
        self.memory.put(key, thumbnail)

    async def ensure_stored(self, request: ThumbnailRequest, *, with_variants: Sequence[Variant] = ()) -> Thumbnail:
        """Make sure the thumbnail is in the store (warm-up); returns it.

        ``with_variants`` are made too, from the same download: a variant that fails is
        logged, not this thumbnail's failure (the row needs the default one)."""
        if not with_variants:
            return await self._ensure_one(request)
        self._warming[request.source] += 1
        cancelled = False
        try:
            thumbnail = await self._ensure_one(request)
            for variant in with_variants:
                try:
                    await self._ensure_one(ThumbnailRequest(request.source, variant))
                except ProxyError as error:
                    log.warning("warming the %s variant of %s failed: %s", variant.name, request.source, error)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            self._warming[request.source] -= 1
            if not self._warming[request.source]:
                del self._warming[request.source]
                if not cancelled:
                    self.hold.take(request.source)  # done with these bytes
                # Cancelled (a shutdown): the variant's flight goes on without this caller, and the
                # held bytes (kept HOLD_SECONDS) spare it a second download of the source.
        return thumbnail

    async def _ensure_one(self, request: ThumbnailRequest) -> Thumbnail:
        found = await self.get(request)
        if found.tier in (MEMORY, REDIS) and not await self.store.exists(request.cache_key):
            await self.store.put(request.cache_key, found.thumbnail.pack())
        return found.thumbnail


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]
