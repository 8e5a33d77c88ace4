"""Assembling the proxy: its objects, routes and lifespan, as a component or an app alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from httpkit.component import Component
from httpkit.errors import HTTPError, handle_http_error, handle_starlette_error
from proxy.admission import FetchBudget, SourceHold
from proxy.config import ProxyConfig
from proxy.fetch import OriginFetcher, check_guard, policy_from
from proxy.handlers import ProxyEndpoints, ThumbnailEndpoint
from proxy.health import HealthCheck
from proxy.metrics import ProxyMetrics
from proxy.negative import NegativeCache
from proxy.pipeline import configure_libvips
from proxy.processing import ProcessingPool
from proxy.service import HOLD_SECONDS, ThumbnailService
from proxy.singleflight import Leases
from proxy.storage import Store
from proxy.stores import store_from_url
from proxy.tiers import MemoryLRU, RedisTier
from proxy.warm import Warmer
from proxy.warm_queue import MemoryWarmQueue, RedisWarmQueue, WarmQueue

log = logging.getLogger("thumbs.proxy")


@dataclass
class Proxy:
    component: Component
    warmer: Warmer
    service: ThumbnailService
    metrics: ProxyMetrics
    health: HealthCheck


def create_proxy(config: ProxyConfig, *, warm_consumer: bool) -> Proxy:
    configure_libvips()
    metrics = ProxyMetrics()
    policy = policy_from(config.allowed_sources, config.allow_private_sources)
    fetcher = OriginFetcher(
        policy,
        max_bytes=config.max_source_bytes,
        connect_timeout=config.fetch_connect_timeout,
        total_timeout=config.fetch_timeout,
        max_redirects=config.max_redirects,
    )
    pool = ProcessingPool(config.processing_threads, config.processing_queue)
    store = store_from_url(config.store_url)
    redis_tier: RedisTier | None = None
    leases: Leases | None = None
    lease_client: Redis | None = None
    queue: WarmQueue
    # Retry a failed warm only once its negative-cache entry has expired, or the retry is void.
    retry_backoff = max(1.0, float(config.negative_ttl))
    if config.redis_url:
        redis_tier = RedisTier(config.redis_url, config.redis_prefix, config.redis_ttl)
        lease_client = Redis.from_url(config.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        leases = Leases(lease_client, config.redis_prefix, millis=config.lease_ms)
        queue = RedisWarmQueue(config.redis_url, config.redis_prefix, backoff=retry_backoff)
    else:
        queue = MemoryWarmQueue(backoff=retry_backoff)
    service = ThumbnailService(
        fetcher=fetcher,
        pool=pool,
        memory=MemoryLRU(config.memory_cache_bytes),
        redis=redis_tier,
        leases=leases,
        store=store,
        negative=NegativeCache(config.negative_ttl, redis_tier),
        metrics=metrics,
        max_pixels=config.max_source_pixels,
        wait_limit=config.fetch_timeout * 2 + 30,
        max_decode_bytes=config.max_decode_bytes,
        max_side=config.max_source_side,
        # Admission before download. A download waits for a ticket a little longer than one
        # fetch can take (so at least one ticket comes free), then it is a 503.
        budget=FetchBudget(config.max_concurrent_fetches, config.max_fetch_bytes_in_flight,
                           config.max_source_bytes, wait_limit=config.fetch_timeout + 1),
        hold=SourceHold(min(64_000_000, config.max_fetch_bytes_in_flight // 4), seconds=HOLD_SECONDS),
    )
    secrets = [config.secret, *config.previous_secrets]
    warmer = Warmer(service, policy, secrets, queue, concurrency=pool.threads,
                    public_base_url=config.public_base_url)
    health = HealthCheck(pool, store, redis_tier)
    endpoints = ProxyEndpoints(
        service, warmer, health, metrics, config.warm_token
    )
    routes = [
        # Starlette answers other methods with 405 and Allow (in the JSON contract, via httpkit).
        Route("/t/{path:path}", ThumbnailEndpoint(service, metrics, secrets), methods=["GET"], name="thumbnail"),
        Route("/warm", endpoints.warm, methods=["POST"], name="warm"),
        Route("/healthz", endpoints.health, methods=["GET"], name="healthz"),
        Route("/readyz", endpoints.ready, methods=["GET"], name="readyz"),
        Route("/metrics", endpoints.metrics_page, methods=["GET"], name="metrics"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await check_guard()  # refuses to serve if the private-address guard is not in effect
        pool.start()
        consumer: asyncio.Task[None] | None = None
        if warm_consumer:
            consumer = asyncio.create_task(warmer.consume(), name="thumbs-warm-consumer")
        # In the background: a large store takes a while to walk, and serving need not wait for it.
        sweep = asyncio.create_task(_sweep(store), name="thumbs-store-sweep")
        # Gauges are sampled, not computed at scrape time: with several workers the scrape
        # reads every worker's last sample from the multiprocess files.
        sampler = asyncio.create_task(_sample_pool(pool, metrics), name="thumbs-pool-gauges")
        try:
            yield
        finally:
            for task in (sweep, sampler):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if consumer is not None:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            await queue.close()
            await fetcher.close()
            if redis_tier is not None:
                await redis_tier.close()
            if lease_client is not None:
                await lease_client.aclose()
            await store.close()
            pool.close(config.shutdown_timeout)

    handlers = {HTTPError: handle_http_error, HTTPException: handle_starlette_error}
    component = Component(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    return Proxy(component=component, warmer=warmer, service=service, metrics=metrics, health=health)


def sample_pool(pool: ProcessingPool, metrics: ProxyMetrics) -> None:
    metrics.pool_in_flight.set(pool.in_flight)
    metrics.pool_saturation.set(pool.saturation)


async def _sample_pool(pool: ProcessingPool, metrics: ProxyMetrics, interval: float = 1.0) -> None:
    while True:
        sample_pool(pool, metrics)
        await asyncio.sleep(interval)


async def _sweep(store: Store) -> None:
    try:
        removed = await store.sweep()
    except OSError as exc:
        log.warning("could not sweep the store %s: %s", store.describe(), exc)
        return
    if removed:
        log.info("removed %d abandoned temp files from the store %s", removed, store.describe())


def create_proxy_app(config: ProxyConfig, *, warm_consumer: bool = True) -> Starlette:
    """The proxy alone, as its own ASGI app (tests, or a proxy-only deployment)."""
    proxy = create_proxy(config, warm_consumer=warm_consumer)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with proxy.component.lifespan():
            yield

    return Starlette(
        routes=list(proxy.component.routes),
        lifespan=lifespan,
        exception_handlers=dict(proxy.component.exception_handlers),
    )
