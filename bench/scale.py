"""Section 4: 1, 2 and 4 uvicorn workers behind nginx, sharing Redis and the disk store.

Cold: new sources through the edge (every request a MISS). Warm: memory-tier hits through
nginx without its cache (the edge's HITs never reach the workers). Single-flight: bursts of
concurrent requests for each of a few new images straight at the workers, counting origin
fetches per unique image at the origin's access log.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import load
from bench.context import Context
from bench.nginx import Origin, edge, origin
from bench.services import free_port
from bench.targets import ours_settings, ours_url, serve_ours
from bench.warm_http import REDIS_URL, redis_prefix

WORKERS = (1, 2, 4)


async def burst(urls: list[str], per_url: int) -> dict[int, int]:
    """``per_url`` simultaneous GETs of each URL, one URL after another; statuses seen."""
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=per_url, max_keepalive_connections=per_url)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        for url in urls:
            responses = await asyncio.gather(*(client.get(url) for _ in range(per_url)), return_exceptions=True)
            for response in responses:
                code = response.status_code if isinstance(response, httpx.Response) else 0
                statuses[code] = statuses.get(code, 0) + 1
    return statuses


def run(ctx: Context) -> dict[str, Any]:
    """Every worker count once per round, rounds interleaved (1 2 4, 1 2 4, ...); per worker count the
    median round's cold and warm figures with every round's, and speedups from rounds' ratios."""
    cold_count, concurrency = int(ctx.scaled(120, 40)), 8
    seconds, bursts, per_url = ctx.scaled(5, 2), int(ctx.scaled(10, 4)), 32
    rounds = int(ctx.scaled(3, 2))
    run_tag = str(int(time.time()))
    samples: dict[int, list[dict[str, Any]]] = {workers: [] for workers in WORKERS}
    static = ctx.work / "ceiling" / "static" / "thumb.jpg"
    static.parent.mkdir(parents=True, exist_ok=True)
    static.write_bytes(b"\xff\xd8placeholder")
    with origin(ctx.work / "corpus", ctx.work) as origin_, redis_prefix() as prefix:
        for round_ in range(rounds):
            for workers in WORKERS:
                sample = one_cell(ctx, origin_, workers, f"{run_tag}-r{round_}", f"{prefix}r{round_}w{workers}:",
                                  static, cold_count, concurrency, seconds, bursts, per_url)
                samples[workers].append(sample)
                print(f"  scale r{round_} w={workers} cold {sample['cold']['throughput_rps']}/s "
                      f"warm {sample['warm']['rps']}/s fetches/image "
                      f"{sample['burst']['mean_fetches_per_image']}", flush=True)
    rows = [summarise(workers, samples[workers], samples[WORKERS[0]]) for workers in WORKERS]
    return {"concurrency_cold": concurrency, "rounds": rounds, "rows": rows}


def one_cell(ctx: Context, origin_: Origin, workers: int, tag: str, redis_prefix_: str, static: Path,
             cold_count: int, concurrency: int, seconds: float, bursts: int, per_url: int) -> dict[str, Any]:
    """One round of one worker count: a fresh stack (empty stores), cold, warm and single-flight bursts."""
    photos = [image.name for image in ctx.corpus_of("photo4k_jpeg")]
    host = origin_.base_url.removeprefix("http://")
    app = ours_settings(ctx.work, f"scale-{workers}", host, workers=workers, redis_url=REDIS_URL,
                        redis_prefix=redis_prefix_)
    edge_settings = app.model_copy(update={"port": free_port(), "stack_app_port": app.port})
    with serve_ours(app, ctx.work / "ours" / f"scale-{workers}.log") as base, \
            edge(edge_settings, ctx.work, static) as edge_:
        make = functools.partial(ours_url, edge_.url)
        load.cold([make(origin_.url(photos[0], f"{tag}-w{workers}-warmup-{i}")) for i in range(2 * workers)],
                  2 * workers)
        urls = [make(origin_.url(photos[i % len(photos)], f"{tag}-w{workers}-{i}")) for i in range(cold_count)]
        cold = load.cold(urls, concurrency)
        warm_url = ours_url(edge_.pass_url, origin_.url(photos[0], f"{tag}-w{workers}-warm"))
        for _ in range(8 * workers):  # fill every worker's memory tier
            httpx.get(warm_url, timeout=60).raise_for_status()
        warm = load.wrk(warm_url, 32, seconds)
        sources = [origin_.url(photos[i % len(photos)], f"{tag}-w{workers}-burst-{i}") for i in range(bursts)]
        statuses = asyncio.run(burst([ours_url(base, s) for s in sources], per_url))
        fetched = origin_.fetches()
        per_image = [fetched[s.removeprefix(origin_.base_url)] for s in sources]
    return {"cold": cold, "warm": warm,
            "burst": {"images": bursts, "requests_per_image": per_url, "statuses": statuses,
                      "origin_fetches_per_image": per_image,
                      "mean_fetches_per_image": round(sum(per_image) / len(per_image), 3)}}


def _median_by(runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> dict[str, Any]:
    return dict(sorted(runs, key=key)[len(runs) // 2])


def summarise(workers: int, runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round's cold and warm figures (each its own median), every round's, and the speedups.

    Speedup: the ratio of the median rounds' figures, with the spread of the same-round ratios (round r's N workers over
    round r's one worker: the pairs that ran side by side).
    """
    def cold_rps(run: dict[str, Any]) -> float:
        return float(run["cold"]["throughput_rps"])

    def warm_rps(run: dict[str, Any]) -> float:
        return float(run["warm"]["rps"])

    cold = _median_by(runs, cold_rps)["cold"]
    warm = _median_by(runs, warm_rps)["warm"]
    per_image = [n for run in runs for n in run["burst"]["origin_fetches_per_image"]]
    statuses: dict[int, int] = {}
    for run in runs:
        for code, count in run["burst"]["statuses"].items():
            statuses[code] = statuses.get(code, 0) + count
    first = runs[0]["burst"]
    row: dict[str, Any] = {
        "workers": workers, "cold": cold, "warm": warm,
        "cold_rounds": [cold_rps(run) for run in runs], "warm_rounds": [warm_rps(run) for run in runs],
        "burst": {"images": first["images"] * len(runs), "requests_per_image": first["requests_per_image"],
                  "statuses": statuses, "origin_fetches_per_image": per_image,
                  "mean_fetches_per_image": round(sum(per_image) / len(per_image), 3)},
    }
    for name, measure in (("cold", cold_rps), ("warm", warm_rps)):
        ratios = [measure(run) / measure(base) for run, base in zip(runs, baseline, strict=True)]
        median_ratio = measure(_median_by(runs, measure)) / measure(_median_by(baseline, measure))
        row[f"{name}_speedup"] = round(median_ratio, 2)
        row[f"{name}_speedup_rounds"] = [round(ratio, 2) for ratio in ratios]
    return row
