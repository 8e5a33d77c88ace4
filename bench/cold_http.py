"""Section 2: cold HTTP end to end. Every request is a new source URL (empty caches).

Ours (one uvicorn worker, its libvips pool on every core) against thumbor 7.8 with one
process and with one process per core, on the same origin, in the same run, at
concurrency 1, 4 and 16. Then the workload of imgproxy's published benchmark: a 7360x4912
JPEG, fit 512 px, two concurrent users, every request a miss.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import load
from bench.context import Context
from bench.nginx import Origin, origin
from bench.targets import ours_settings, ours_url, serve_ours, serve_thumbor, thumbor_available, thumbor_url
from proxy.pipeline import configure_libvips, render
from proxy.variants import Variant

CONCURRENCY = (1, 4, 16)
CORES = os.cpu_count() or 1


def thumbor_maker(base: str, box: int) -> Callable[[str], str]:
    """Source -> thumbor URL at ``box``, bound now (not to a loop variable)."""
    return lambda source: thumbor_url(base, source, box)


def unique_urls(origin_: Origin, names: list[str], count: int, tag: str, make: Callable[[str], str]) -> list[str]:
    return [make(origin_.url(names[i % len(names)], f"{tag}-{i}")) for i in range(count)]


@contextlib.contextmanager
def contenders(ctx: Context, origin_: Origin) -> Iterator[dict[str, Callable[[str], str]]]:
    """URL makers for every server under test, all running until the block ends."""
    host = origin_.base_url.removeprefix("http://")
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(serve_ours(ours_settings(ctx.work, "cold", host), ctx.work / "ours" / "cold.log"))
        makers: dict[str, Callable[[str], str]] = {"ours": lambda source: ours_url(base, source)}
        if thumbor_available():
            one = stack.enter_context(serve_thumbor(ctx.work, 1))
            makers["thumbor-1proc"] = lambda source: thumbor_url(one, source)
            many = stack.enter_context(serve_thumbor(ctx.work, CORES))
            makers[f"thumbor-{CORES}proc"] = lambda source: thumbor_url(many, source)
        yield makers


def run(ctx: Context) -> dict[str, Any]:
    """Every (server, source, concurrency) cell once per round, rounds interleaved; the median round's
    figures with the spread of throughput and p50 over the rounds."""
    photos = [image.name for image in ctx.corpus_of("photo4k_jpeg")]
    pngs = [image.name for image in ctx.corpus_of("ai1024_png")]
    counts = {1: int(ctx.scaled(24, 12)), 4: int(ctx.scaled(60, 40)), 16: int(ctx.scaled(96, 48))}
    rounds = int(ctx.scaled(3, 2))
    samples: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    run_tag = str(int(time.time()))
    cells = [("photo4k_jpeg", photos, concurrency) for concurrency in CONCURRENCY] + [("ai1024_png", pngs, 4)]
    with origin(ctx.work / "corpus", ctx.work) as origin_, contenders(ctx, origin_) as makers:
        for name, make in makers.items():  # warm-up: imports, pools, connections
            load.cold(unique_urls(origin_, photos, 4, f"{run_tag}-warmup-{name}", make), 2)
        for round_ in range(rounds):
            for kind, names, concurrency in cells:
                for name, make in makers.items():
                    tag = f"{run_tag}-r{round_}-{name}-{kind}-c{concurrency}"
                    result = load.cold(unique_urls(origin_, names, counts[concurrency], tag, make), concurrency)
                    samples.setdefault((name, kind, concurrency), []).append(result)
                    print(f"  cold r{round_} {name:16s} {kind} c={concurrency:<2d} {result['throughput_rps']:7.1f}/s "
                          f"p50 {result['latency']['median_ms']:.0f} ms", flush=True)
        imgproxy = imgproxy_workload(ctx, origin_, run_tag)
    runs = [{"server": name, "kind": kind, "concurrency": concurrency, **median_round(results)}
            for (name, kind, concurrency), results in samples.items()]
    return {"cores": CORES, "rounds": rounds, "runs": runs, "imgproxy_workload": imgproxy}


def median_round(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput, plus every round's throughput and latency percentiles."""
    ordered = sorted(results, key=lambda result: float(result["throughput_rps"]))
    chosen = dict(ordered[len(ordered) // 2])
    chosen["throughput_rounds"] = [result["throughput_rps"] for result in results]
    chosen["p50_rounds_ms"] = [result["latency"]["median_ms"] for result in results]
    chosen["p95_rounds_ms"] = [result["latency"]["p95_ms"] for result in results]
    chosen["p99_rounds_ms"] = [result["latency"]["p99_ms"] for result in results]
    return chosen


def imgproxy_workload(ctx: Context, origin_: Origin, run_tag: str) -> dict[str, Any]:
    """imgproxy's published workload: one huge JPEG, fit 512 px, 2 users, every request a miss.

    thumbor is asked for 512 px over HTTP. Our URL contract has a single 200 px variant, so
    ours is measured both ways: over HTTP at 200 px, and in-process at 512 px (two threads,
    the same pipeline with a 512 px variant).
    """
    huge = ctx.corpus_of("huge_jpeg")[0]
    count = int(ctx.scaled(24, 8))
    result: dict[str, Any] = {"source": huge.name, "source_bytes": huge.path.stat().st_size,
                                 "source_size": "7360x4912", "concurrency": 2, "requests": count}
    host = origin_.base_url.removeprefix("http://")
    settings = ours_settings(ctx.work, "imgproxy", host)
    with serve_ours(settings, ctx.work / "ours" / "imgproxy.log") as base:
        make = lambda source: ours_url(base, source)  # noqa: E731
        load.cold(unique_urls(origin_, [huge.name], 1, f"{run_tag}-ip-warm", make), 1)
        result["ours_http_200px"] = load.cold(unique_urls(origin_, [huge.name], count, f"{run_tag}-ip", make), 2)
    if thumbor_available():
        with serve_thumbor(ctx.work, CORES) as thumbor:
            for box in (512, 200):
                make = thumbor_maker(thumbor, box)
                load.cold(unique_urls(origin_, [huge.name], 1, f"{run_tag}-th-warm-{box}", make), 1)
                urls = unique_urls(origin_, [huge.name], count, f"{run_tag}-th{box}", make)
                result[f"thumbor_http_{box}px"] = load.cold(urls, 2)
    result["ours_inprocess_512px"] = in_process(huge.path.read_bytes(), count, threads=2)
    return result


def in_process(data: bytes, count: int, threads: int) -> dict[str, Any]:
    configure_libvips(1)
    variant = Variant(name="bench512", max_side=512, quality=65)
    render(data, variant, 50_000_000)
    latencies: list[float] = []
    sizes: list[int] = []

    def one(_: int) -> None:
        started = time.perf_counter()
        sizes.append(len(render(data, variant, 50_000_000).data))
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    from bench.stats import summary_ms

    return {"ok": count, "wall_s": round(wall, 3), "throughput_rps": round(count / wall, 2),
            "latency": summary_ms(latencies), "bytes_median": sorted(sizes)[len(sizes) // 2]}
