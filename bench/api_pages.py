"""The library API at 1,000,000 PostgreSQL rows: a page by cursor vs by offset, at several depths.

Seeds a throwaway database server-side (INSERT ... SELECT generate_series, through the real
schema: indexes, the counter trigger), serves the API alone in its own uvicorn process, and
times sequential keep-alive HTTP requests from this process. Then the backfill rate: legacy
images warmed through the real proxy warm path from a loopback stand-in origin.

``python -m bench.api_pages [--quick]`` runs it alone; ``bench.run`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx

from bench.context import Context
from bench.services import PYTHON, free_port, running
from bench.stats import summary_ms
from thumbs.configs import proxy_config

ADMIN_URL = os.environ.get("THUMBS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DEPTHS = (0, 10_000, 100_000, 900_000)
LIMIT = 50


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def seed(url: str, rows: int) -> float:
    """``rows`` images, three per second of created_at (ties), all server-side."""
    connection = await asyncpg.connect(url)
    try:
        started = time.monotonic()
        await connection.execute(
            f"""
            INSERT INTO pipeline_step_outputs
                (url, url_hash, created_at, pipeline_id, step, thumbnail_status, width, height, color)
            SELECT u, encode(sha256(convert_to(u, 'UTF8')), 'hex'),
                   timestamptz '2024-01-01' + (n / 3) * interval '1 second', 'bench', 'generate',
                   'ready', 1024, 768, '#808080'
            FROM (SELECT n, 'https://images.bench.example/out/' || n || '.png' AS u
                  FROM generate_series(1, {rows}) AS n) AS source
            """
        )
        seconds = time.monotonic() - started
        await connection.execute("VACUUM ANALYZE pipeline_step_outputs")
        return seconds
    finally:
        await connection.close()


async def positions(url: str, depths: Sequence[int]) -> dict[int, tuple[Any, int]]:
    """(created_at, id) of the image just above each depth, to build a cursor landing there."""
    connection = await asyncpg.connect(url)
    try:
        found = {}
        for depth in depths:
            if depth:
                row = await connection.fetchrow(
                    "SELECT created_at, id FROM pipeline_step_outputs ORDER BY created_at DESC, id DESC "
                    "OFFSET $1 LIMIT 1",
                    depth - 1,
                )
                found[depth] = (row["created_at"], row["id"])
        return found
    finally:
        await connection.close()


def timed(client: httpx.Client, path: str, params: dict[str, Any], count: int) -> list[float]:
    samples = []
    for _ in range(count + 3):  # 3 warm-up requests, not counted
        started = time.perf_counter()
        response = client.get(path, params=params)
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or len(response.json()["images"]) != LIMIT:
            raise RuntimeError(f"{path} {params}: {response.status_code} {response.text[:200]}")
        samples.append(elapsed)
    return samples[3:]


def measure_pages(base: str, url: str, rows: int, quick: bool) -> list[dict[str, Any]]:
    from library_api.paging import Position, encode_cursor

    # The PRD's depths at 1M rows; the same fractions of a smaller (quick) library.
    depths = list(DEPTHS) if rows >= 1_000_000 else [depth * rows // 1_000_000 for depth in DEPTHS]
    found = asyncio.run(positions(url, depths))
    table = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for depth in depths:
            cursor_params: dict[str, Any] = {"limit": LIMIT}
            if depth:
                created_at, image_id = found[depth]
                cursor_params["cursor"] = encode_cursor(Position(created_at, image_id), depth)
            cursor = summary_ms(timed(client, "/api/library/images", cursor_params, 60 if quick else 300))
            offset_count = 60 if depth <= 10_000 else (5 if quick else 20)
            offset = summary_ms(timed(client, "/api/library/images", {"limit": LIMIT, "offset": depth}, offset_count))
            table.append(
                {
                    "depth": f"{depth:,}",
                    "cursor p50 ms": cursor["median_ms"],
                    "cursor p95 ms": cursor["p95_ms"],
                    "offset p50 ms": offset["median_ms"],
                    "offset p95 ms": offset["p95_ms"],
                    "offset/cursor": round(offset["median_ms"] / cursor["median_ms"], 1),
                }
            )
        # A real walk: follow next_cursor from the top for a few hundred pages.
        walk: list[float] = []
        params: dict[str, Any] = {"limit": LIMIT}
        for _ in range(100 if quick else 400):
            started = time.perf_counter()
            page = client.get("/api/library/images", params=params).json()
            walk.append(time.perf_counter() - started)
            params = {"limit": LIMIT, "cursor": page["next_cursor"]}
        walked = summary_ms(walk)
        table.append(
            {
                "depth": f"walk of {len(walk)} pages",
                "cursor p50 ms": walked["median_ms"],
                "cursor p95 ms": walked["p95_ms"],
                "offset p50 ms": "",
                "offset p95 ms": "",
                "offset/cursor": "",
            }
        )
    return table


def measure_backfill(ctx: Context, images: int) -> dict[str, Any]:
    """Legacy images (never warmed) through run_backfill and the real in-process proxy warmer."""
    from library_api.backfill import run_backfill
    from library_api.migrate import run_migrations
    from proxy.app import create_proxy
    from tests.support.images import jpeg, photo
    from tests.support.origin import Origin
    from tests.support.servers import serve_in_thread
    from thumbs.settings import Settings

    name = f"thumbs_bench_backfill_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        origin = Origin()
        body = jpeg(photo(640, 480))
        with serve_in_thread(origin) as origin_base:
            origin.base_url = origin_base
            for n in range(images):
                origin.add(f"/legacy/{n}.jpg", body, content_type="image/jpeg")
            data_dir = ctx.work / "api_backfill" / name
            settings = Settings(
                _env_file=None,
                data_dir=data_dir,
                database_url=database_url(name),
                secret="bench",
                allowed_sources=[origin_base.removeprefix("http://")],
                allow_private_sources=True,
            )
            run_migrations(settings)

            async def go() -> tuple[float, Any]:
                connection = await asyncpg.connect(settings.database_url)
                try:
                    await connection.execute(
                        "INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) "
                        f"SELECT '{origin_base}/legacy/' || n || '.jpg', now() - n * interval '1 second', "
                        f"'legacy', 'old' FROM generate_series(0, {images - 1}) AS n"
                    )
                finally:
                    await connection.close()
                proxy = create_proxy(proxy_config(settings), warm_consumer=False)
                async with proxy.component.lifespan():
                    started = time.monotonic()
                    progress = await run_backfill(settings, proxy.warmer, batch_size=50)
                    return time.monotonic() - started, progress

            seconds, progress = asyncio.run(go())
        return {
            "images": images,
            "seconds": round(seconds, 1),
            "rate_per_s": round(images / seconds, 1),
            "done": progress.done,
            "failed": progress.failed,
            "origin_fetches": sum(origin.hits.values()),
            "source": "640x480 JPEG (~60 KB), loopback origin, in-process proxy warmer, batch 50",
        }
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run(ctx: Context) -> dict[str, Any]:
    rows = 100_000 if ctx.quick else 1_000_000
    name = f"thumbs_bench_api_{uuid.uuid4().hex[:8]}"
    url = database_url(name)
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        from library_api.migrate import run_migrations
        from thumbs.settings import Settings

        run_migrations(Settings(_env_file=None, database_url=url))
        seed_seconds = asyncio.run(seed(url, rows))
        port = free_port()
        log = ctx.work / "logs" / "api_pages.log"
        with running(
            [PYTHON, "-m", "bench.api_pages", "serve", url, str(port)],
            log,
            ready_url=f"http://127.0.0.1:{port}/api/openapi.json",
        ):
            table = measure_pages(f"http://127.0.0.1:{port}", url, rows, ctx.quick)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    backfill = measure_backfill(ctx, 1_000 if ctx.quick else 10_000)
    cursor_rows = [row for row in table if isinstance(row["offset p50 ms"], float)]
    worst_cursor = max(row["cursor p50 ms"] for row in cursor_rows)
    return {
        "rows": rows,
        "seed_seconds": round(seed_seconds, 1),
        "method": (
            f"{rows:,} rows seeded server-side in {seed_seconds:.1f} s (INSERT ... SELECT generate_series, with "
            "every index and the counter trigger). The API alone (one uvicorn worker, uvloop) in its own "
            f"process; sequential keep-alive GETs of limit={LIMIT} from this process, 3 warm-up requests "
            "first. `total` comes from the trigger-kept counter, so no request counts rows. Backfill: "
            f"{backfill['images']:,} never-warmed rows through `run_backfill` and the real proxy warmer: "
            f"{backfill['rate_per_s']} images/s ({backfill['done']} done, {backfill['failed']} failed)."
        ),
        "table": table,
        "backfill": backfill,
        "targets": [
            {
                "name": f"API cursor page p50 at any depth ({rows:,} rows)",
                "target": "< 5 ms",
                "measured": f"worst p50 {worst_cursor:.2f} ms over depths 0-{cursor_rows[-1]['depth']}",
                "met": worst_cursor < 5,
            },
            {
                "name": f"Backfill of {backfill['images']:,} legacy images",
                "target": "reported",
                "measured": f"{backfill['rate_per_s']} images/s",
                "met": None,
            },
        ],
    }


def serve(url: str, port: int) -> None:
    import uvicorn

    from library_api.app import create_api_app
    from proxy.warm_types import WarmOutcome
    from thumbs.settings import Settings

    class NoWarm:  # listing only: nothing is ingested here
        # The WarmClient signature exactly, tags included (they only travel with queued entries).
        async def warm(
            self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
        ) -> list[WarmOutcome]:
            return [WarmOutcome(source, True) for source in sources]

    app = create_api_app(Settings(_env_file=None, database_url=url, secret="bench"), NoWarm())
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools"
    )


def main(argv: Sequence[str]) -> None:
    if argv[:1] == ["serve"]:
        serve(argv[1], int(argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import orjson

    print(orjson.dumps(run(Context(quick=args.quick)), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
