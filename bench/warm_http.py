"""Section 3: warm hits. The proxy's memory, Redis and disk tiers on one worker, nginx HITs,
each beside its ceiling measured in the same run (a raw ASGI app returning the same bytes,
like our hit path, with bare Starlette for reference; nginx serving a static file of the
same size), one hot URL and a hot set of many, driven by wrk from one core.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from typing import Any

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


def run(ctx: Context) -> dict[str, Any]:
    """Every cell measured in interleaved rounds (A B C ..., A B C ...), median with min-max.

    Cells: our three tiers on one hot URL (the best case); the memory tier over a hot set of
    many URLs (wrk cycling through them); a raw ASGI app returning the same bytes with the
    same headers (the like-for-like ceiling: our hit path is raw ASGI too) and a bare
    Starlette app (for reference); then nginx HIT and nginx static.
    """
    seconds = ctx.scaled(6, 2)
    rounds = int(ctx.scaled(3, 2))
    hot = int(ctx.scaled(200, 40))
    connections = 32
    results: dict[str, Any] = {"connections": connections, "seconds": seconds, "wrk_threads": 1,
                                  "rounds": rounds, "hot_set_urls": hot}
    source_name = ctx.corpus_of("photo4k_jpeg")[0].name
    hot_names = [image.name for image in ctx.corpus_of("fal_jpeg")]
    cells: dict[str, tuple[str, str | None]] = {}  # name -> (url, hot-set paths file)
    with origin(ctx.work / "corpus", ctx.work) as origin_, redis_prefix() as prefix, \
            contextlib.ExitStack() as stack:
        host = origin_.base_url.removeprefix("http://")
        body = b""
        for tier in ("memory", "redis", "disk"):
            settings = tier_settings(ctx, tier, host, prefix)
            base = stack.enter_context(serve_ours(settings, ctx.work / "ours" / f"warm-{tier}.log"))
            url = ours_url(base, origin_.url(source_name, f"warm-{tier}"))
            body, _ = prime(url, "x-thumb-tier", tier)
            cells[f"direct_{tier}"] = (url, None)
            if tier == "memory":
                paths = []
                for index in range(hot):
                    hot_url = ours_url(base, origin_.url(hot_names[index % len(hot_names)], f"hot-{index}"))
                    prime(hot_url, "x-thumb-tier", "memory")
                    paths.append(httpx.URL(hot_url).raw_path.decode())
                paths_file = ctx.work / "ceiling" / "hot_set.txt"
                paths_file.parent.mkdir(parents=True, exist_ok=True)
                paths_file.write_text("\n".join(paths) + "\n")
                cells["direct_memory_hot_set"] = (base + paths[0], str(paths_file))
        results["body_bytes"] = len(body)
        for name, factory in (("raw_asgi_ceiling", "bench.ceiling:create_raw_app"),
                              ("starlette_ceiling", "bench.ceiling:create_app")):
            cells[name] = (stack.enter_context(ceiling_server(ctx, body, factory)) + "/t/x/thumb/y.jpg", None)
        results.update(interleaved(cells, connections, seconds, rounds))
        results.update(through_nginx(ctx, origin_, source_name, body, connections, seconds, rounds))
    raw = results["raw_asgi_ceiling"]["rps"]
    starlette = results["starlette_ceiling"]["rps"]
    for tier in ("memory", "memory_hot_set", "redis", "disk"):
        results[f"fraction_{tier}"] = round(results[f"direct_{tier}"]["rps"] / raw, 3)
    results["fraction_memory_of_starlette"] = round(results["direct_memory"]["rps"] / starlette, 3)
    results["fraction_nginx_hit"] = round(
        results["nginx_hit"]["rps"] / results["nginx_static"]["rps"], 3)
    return results


def interleaved(
    cells: dict[str, tuple[str, str | None]], connections: int, seconds: float, rounds: int
) -> dict[str, dict[str, Any]]:
    """wrk on every cell once per round, rounds interleaved; the median round's figures, plus spread."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in cells}
    for round_ in range(rounds):
        for name, (url, paths_file) in cells.items():
            result = load.wrk(url, connections, seconds, paths_file=paths_file)
            samples[name].append(result)
            print(f"  warm r{round_} {name:24s} {result['rps']:>9} req/s", flush=True)
    return {name: summarise(runs) for name, runs in samples.items()}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda run: float(run["rps"]))
    median = dict(ordered[len(ordered) // 2])
    median["rps"] = round(statistics.median(float(run["rps"]) for run in runs), 1)
    median["rps_spread"] = [ordered[0]["rps"], ordered[-1]["rps"]]
    median["rps_rounds"] = [run["rps"] for run in runs]
    return median


@contextlib.contextmanager
def ceiling_server(ctx: Context, body: bytes, factory: str) -> Iterator[str]:
    path = ctx.work / "ceiling" / "thumb.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port",
            str(port), "--no-access-log", "--log-level", "warning", "--no-server-header"]
    with running(argv, ctx.work / "ceiling" / f"uvicorn-{port}.log", f"http://127.0.0.1:{port}/healthz",
                 env={"BENCH_CEILING_FILE": str(path)}):
        yield f"http://127.0.0.1:{port}"


def through_nginx(
    ctx: Context, origin_: Origin, source_name: str, body: bytes, connections: int, seconds: float, rounds: int
) -> dict[str, dict[str, Any]]:
    host = origin_.base_url.removeprefix("http://")
    app = ours_settings(ctx.work, "warm-edge", host)
    static = ctx.work / "ceiling" / "static" / "thumb.jpg"
    static.parent.mkdir(parents=True, exist_ok=True)
    static.write_bytes(body)
    edge_settings = app.model_copy(update={"port": free_port(), "stack_app_port": app.port})
    with serve_ours(app, ctx.work / "ours" / "warm-edge.log"), edge(edge_settings, ctx.work, static) as edge_:
        url = ours_url(edge_.url, origin_.url(source_name, "warm-edge"))
        prime(url, "x-cache-status", "hit")
        return interleaved({"nginx_hit": (url, None), "nginx_static": (edge_.static_url, None)}, connections,
                           seconds, rounds)
