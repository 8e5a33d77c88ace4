"""Section 3: warm hits. The proxy's memory, Redis and disk tiers on one worker, nginx HITs,
each beside its ceiling measured in the same run (a bare Starlette app returning the same
bytes; nginx serving a static file of the same size), driven by wrk from one core.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import redis

from bench import load
from bench.context import Context
from bench.nginx import Origin, edge, origin
from bench.services import PYTHON, free_port, running
from bench.targets import ours_settings, ours_url, serve_ours
from thumbs.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"


def prime(url: str, header: str, want: str, tries: int = 5) -> tuple[bytes, str]:
    """GET until the response comes from the tier we want to measure; returns body and tier."""
    seen = ""
    for _ in range(tries):
        response = httpx.get(url, timeout=60)
        response.raise_for_status()
        seen = response.headers.get(header, "")
        if seen.lower() == want:
            return response.content, seen
    raise RuntimeError(f"{url}: wanted {header}={want}, got {seen!r}")


@contextlib.contextmanager
def redis_prefix() -> Iterator[str]:
    prefix = f"thumbs-bench-{int(time.time())}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def tier_settings(ctx: Context, tier: str, host: str, prefix: str) -> Settings:
    if tier == "memory":
        return ours_settings(ctx.work, "warm-memory", host)
    if tier == "redis":
        return ours_settings(ctx.work, "warm-redis", host, memory_cache_bytes=0, redis_url=REDIS_URL,
                             redis_prefix=prefix)
    return ours_settings(ctx.work, "warm-disk", host, memory_cache_bytes=0)


def run(ctx: Context) -> dict[str, object]:
    seconds = ctx.scaled(6, 2)
    connections = 32
    results: dict[str, object] = {"connections": connections, "seconds": seconds, "wrk_threads": 1}
    source_name = ctx.corpus_of("photo4k_jpeg")[0].name
    with origin(ctx.work / "corpus", ctx.work) as origin_, redis_prefix() as prefix:
        host = origin_.base_url.removeprefix("http://")
        body = b""
        for tier in ("memory", "redis", "disk"):
            settings = tier_settings(ctx, tier, host, prefix)
            with serve_ours(settings, ctx.work / "ours" / f"warm-{tier}.log") as base:
                url = ours_url(base, origin_.url(source_name, f"warm-{tier}"))
                body, _ = prime(url, "x-thumb-tier", tier)
                results[f"direct_{tier}"] = load.wrk(url, connections, seconds)
                print(f"  warm direct {tier:6s} {results[f'direct_{tier}']['rps']:>9} req/s", flush=True)  # type: ignore[index]
        results["body_bytes"] = len(body)
        results["starlette_ceiling"] = starlette_ceiling(ctx, body, connections, seconds)
        results.update(through_nginx(ctx, origin_, source_name, body, connections, seconds))
    ceiling = results["starlette_ceiling"]["rps"]  # type: ignore[index]
    for tier in ("memory", "redis", "disk"):
        results[f"fraction_{tier}"] = round(results[f"direct_{tier}"]["rps"] / ceiling, 3)  # type: ignore[index]
    results["fraction_nginx_hit"] = round(
        results["nginx_hit"]["rps"] / results["nginx_static"]["rps"], 3)  # type: ignore[index]
    return results


def starlette_ceiling(ctx: Context, body: bytes, connections: int, seconds: float) -> dict[str, object]:
    path = ctx.work / "ceiling" / "thumb.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", "--factory", "bench.ceiling:create_app", "--host", "127.0.0.1", "--port",
            str(port), "--no-access-log", "--log-level", "warning", "--no-server-header"]
    with running(argv, ctx.work / "ceiling" / "uvicorn.log", f"http://127.0.0.1:{port}/healthz",
                 env={"BENCH_CEILING_FILE": str(path)}):
        result = load.wrk(f"http://127.0.0.1:{port}/t/x/thumb/y.jpg", connections, seconds)
    print(f"  warm starlette ceiling {result['rps']:>9} req/s", flush=True)
    return result


def through_nginx(
    ctx: Context, origin_: Origin, source_name: str, body: bytes, connections: int, seconds: float
) -> dict[str, object]:
    host = origin_.base_url.removeprefix("http://")
    app = ours_settings(ctx.work, "warm-edge", host)
    static = ctx.work / "ceiling" / "static" / "thumb.jpg"
    static.parent.mkdir(parents=True, exist_ok=True)
    static.write_bytes(body)
    edge_settings = app.model_copy(update={"port": free_port(), "stack_app_port": app.port})
    with serve_ours(app, ctx.work / "ours" / "warm-edge.log"), edge(edge_settings, ctx.work, static) as edge_:
        url = ours_url(edge_.url, origin_.url(source_name, "warm-edge"))
        prime(url, "x-cache-status", "hit")
        hit = load.wrk(url, connections, seconds)
        static_result = load.wrk(edge_.static_url, connections, seconds)
    print(f"  warm nginx HIT {hit['rps']:>9} req/s, static {static_result['rps']:>9} req/s", flush=True)
    return {"nginx_hit": hit, "nginx_static": static_result}
