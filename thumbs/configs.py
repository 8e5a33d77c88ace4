"""From the product's one Settings object to each package's own configuration."""

from __future__ import annotations

from proxy.config import ProxyConfig
from thumbs.settings import Settings


def proxy_config(settings: Settings) -> ProxyConfig:
    return ProxyConfig(
        secret=settings.secret,
        previous_secrets=tuple(settings.previous_secrets),
        public_base_url=settings.public_base_url,
        warm_token=settings.warm_token,
        allowed_sources=tuple(settings.allowed_sources),
        allow_private_sources=settings.allow_private_sources,
        max_source_bytes=settings.max_source_bytes,
        max_source_pixels=settings.max_source_pixels,
        max_source_side=settings.max_source_side,
        max_decode_bytes=settings.max_decode_bytes,
        fetch_connect_timeout=settings.fetch_connect_timeout,
        fetch_timeout=settings.fetch_timeout,
        max_redirects=settings.max_redirects,
        max_concurrent_fetches=settings.max_concurrent_fetches,
        max_fetch_bytes_in_flight=settings.max_fetch_bytes_in_flight,
        processing_threads=settings.processing_threads,
        processing_queue=settings.processing_queue,
        shutdown_timeout=settings.shutdown_timeout,
        memory_cache_bytes=settings.memory_cache_bytes,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        redis_ttl=settings.redis_ttl,
        negative_ttl=settings.negative_ttl,
        store_url=settings.store_url or str(settings.store_dir),
    )
