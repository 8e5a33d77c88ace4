"""Section 4: 1, 2 and 4 uvicorn workers behind nginx, sharing Redis and the disk store.

Cold: new sources through the edge (every request a MISS). Warm: memory-tier hits through
nginx without its cache (the edge's HITs never reach the workers). Single-flight: bursts of
concurrent requests for each of a few new images straight at the workers, counting origin
fetches per unique image at the origin's access log.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from bench import load
from bench.context import Context
from bench.nginx import edge, origin
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


def run(ctx: Context) -> dict[str, object]:
    photos = [image.name for image in ctx.corpus_of("photo4k_jpeg")]
    cold_count, concurrency = int(ctx.scaled(120, 40)), 8
    seconds, bursts, per_url = ctx.scaled(5, 2), int(ctx.scaled(10, 4)), 32
    tag = str(int(time.time()))
    rows: list[dict[str, object]] = []
    static = ctx.work / "ceiling" / "static" / "thumb.jpg"
    static.parent.mkdir(parents=True, exist_ok=True)
    static.write_bytes(b"\xff\xd8placeholder")
    with origin(ctx.work / "corpus", ctx.work) as origin_, redis_prefix() as prefix:
        host = origin_.base_url.removeprefix("http://")
        for workers in WORKERS:
            app = ours_settings(ctx.work, f"scale-{workers}", host, workers=workers, redis_url=REDIS_URL,
                                redis_prefix=f"{prefix}{workers}:")
            edge_settings = app.model_copy(update={"port": free_port(), "stack_app_port": app.port})
            with serve_ours(app, ctx.work / "ours" / f"scale-{workers}.log") as base, \
                    edge(edge_settings, ctx.work, static) as edge_:
                make = lambda source: ours_url(edge_.url, source)  # noqa: E731
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
            rows.append({
                "workers": workers, "cold": cold, "warm": warm,
                "burst": {"images": bursts, "requests_per_image": per_url, "statuses": statuses,
                          "origin_fetches_per_image": per_image,
                          "mean_fetches_per_image": round(sum(per_image) / len(per_image), 3)},
            })
            print(f"  scale w={workers} cold {cold['throughput_rps']}/s warm {warm['rps']}/s "
                  f"fetches/image {rows[-1]['burst']['mean_fetches_per_image']}", flush=True)  # type: ignore[index]
    base_cold = rows[0]["cold"]["throughput_rps"]  # type: ignore[index]
    base_warm = rows[0]["warm"]["rps"]  # type: ignore[index]
    for row in rows:
        row["cold_speedup"] = round(row["cold"]["throughput_rps"] / base_cold, 2)  # type: ignore[index]
        row["warm_speedup"] = round(row["warm"]["rps"] / base_warm, 2)  # type: ignore[index]
    return {"concurrency_cold": concurrency, "rows": rows}
