"""What the proxy needs to know, with safe defaults: its own configuration.

The proxy never reads the environment or the product's settings; the composition root
(``thumbs.configs.proxy_config``) builds one of these from them. Defaults match the
documented ``THUMBS_*`` defaults, so a ``ProxyConfig(secret=…)`` is a safe proxy: no origin
allowed, private addresses refused, every size and time bounded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProxyConfig:
    # Signing: URLs are HMAC-signed with ``secret``; retired keys still verify.
    secret: str
    previous_secrets: tuple[str, ...] = ()
    public_base_url: str = ""  # recognises this proxy's own thumbnail URLs in warm calls
    warm_token: str = ""  # empty: POST /warm is closed

    # Origins: an empty allow-list allows nothing; private addresses are refused.
    allowed_sources: tuple[str, ...] = ()
    allow_private_sources: bool = False
    max_source_bytes: int = 25_000_000
    max_source_pixels: int = 50_000_000
    # Longest side a source may declare (JPEG's own limit): render cost follows rows and a
    # streamed decode's buffers follow the width, whatever the pixel count.
    max_source_side: int = 65_535
    max_decode_bytes: int = 256 * 1024 * 1024
    fetch_connect_timeout: float = 3.0
    fetch_timeout: float = 10.0
    max_redirects: int = 3
    max_concurrent_fetches: int = 16
    max_fetch_bytes_in_flight: int = 200_000_000

    # Processing
    processing_threads: int = 0  # 0: one per core the process may use (its affinity)
    processing_queue: int = 64
    # How long closing waits for renders still running; one that has not ended by then (a decode
    # running away inside libvips cannot be interrupted) is left to end with the process.
    shutdown_timeout: float = 8.0

    # Tiers: memory LRU, then Redis (optional), then the store.
    memory_cache_bytes: int = 64 * 1024 * 1024
    redis_url: str | None = None
    redis_prefix: str = "thumbs:"
    redis_ttl: int = 7 * 24 * 3600
    negative_ttl: int = 60
    # How long a cross-process single-flight lease lasts before others may take over (renewed
    # every third of it while its holder works): a dead holder costs waiters at most this long.
    lease_ms: int = 5000
    store_url: str = "var/thumbs"  # file:///path, a plain path, or s3://bucket/prefix?endpoint=…
