"""Prometheus metrics, one registry per proxy instance (never the global one).

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before they start, as
``thumbs serve`` does for THUMBS_WORKERS > 1) every process writes its values to files in
that directory and a scrape of any worker sums them all, dead workers' counters included,
so one scrape shows the whole server and no counter goes backwards.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "thumbs_proxy_requests", "Thumbnail answers by status and tier.", ["status", "tier"], registry=r
        )
        self.generation_seconds = Histogram(
            "thumbs_proxy_generation_seconds", "Time to decode, resize and encode one thumbnail.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.fetch_seconds = Histogram(
            "thumbs_proxy_origin_fetch_seconds", "Time to download one source.", buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fetched_bytes = Counter("thumbs_proxy_origin_fetched_bytes", "Source bytes downloaded.", registry=r)
        self.coalesced = Counter(
            "thumbs_proxy_coalesced_waits", "Requests that waited for another's generation.", ["scope"],
            registry=r,
        )
        self.failures = Counter(
            "thumbs_proxy_generation_failures", "Failed generations by error code.", ["error"], registry=r
        )
        self.abandoned = Counter(
            "thumbs_proxy_abandoned_generations",
            "Generations dropped before rendering because every requester disconnected.", registry=r,
        )
        # The queue is shared (Redis): every worker sees the same depth. The pool is per worker.
        self.queue_depth = Gauge(
            "thumbs_proxy_warm_queue_depth", "Warm requests waiting.", registry=r, multiprocess_mode="livemax"
        )
        self.pool_in_flight = Gauge(
            "thumbs_proxy_pool_in_flight", "libvips jobs running or waiting.", registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_saturation = Gauge(
            "thumbs_proxy_pool_saturation", "Share of pool capacity (threads + queue) in use, the busiest worker.",
            registry=r, multiprocess_mode="livemax",
        )
        self.pool_rejections = Counter(
            "thumbs_proxy_pool_rejections", "Jobs refused with 503 because the pool was full.", registry=r
        )

    def render(self) -> bytes:
        directory = os.environ.get(MULTIPROCESS_ENV)
        if directory:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=directory)
            return generate_latest(registry)
        return generate_latest(self.registry)
