"""CPU per origin fetch of the proxy's own fetcher, in-process: what the miss path spends around render().

`python -m bench.fetch_cpu [rounds]`: the bench origin (nginx) serves the corpus; an
:class:`proxy.fetch.OriginFetcher` (the SSRF-guarded transport, byte cap) downloads a
Fal-like JPEG (~290 KB) and a 4K JPEG (~2.8 MB) with 1 and 4 fetches in flight. The figure is
``time.process_time`` per fetch (all threads of this process), median of rounds; the origin's
CPU is not in it. Also the store write (`DiskStore._write`) with and without fsync.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

from bench.context import Context
from bench.nginx import origin
from proxy.fetch import OriginFetcher, policy_from
from proxy.storage import DiskStore


async def _fetch_batch(fetcher: OriginFetcher, urls: list[str], concurrency: int) -> float:
    queue = list(urls)

    async def user() -> None:
        while queue:
            await fetcher.fetch(queue.pop())

    started = time.process_time()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    return (time.process_time() - started) / len(urls) * 1000


async def fetch_cpu(base: str, names: dict[str, str], rounds: int, count: int) -> dict[str, dict[str, float]]:
    host = base.removeprefix("http://")
    fetcher = OriginFetcher(policy_from([host], True), max_bytes=50_000_000, connect_timeout=5, total_timeout=30,
                            max_redirects=3)
    results: dict[str, dict[str, list[float]]] = {}
    try:
        tag = int(time.time())
        for round_ in range(rounds + 1):  # round 0 warms up (connections, imports)
            for kind, name in names.items():
                for concurrency in (1, 4):
                    urls = [f"{base}/u/{tag}-{round_}-{concurrency}-{i}/{name}" for i in range(count)]
                    ms = await _fetch_batch(fetcher, urls, concurrency)
                    if round_:
                        results.setdefault(kind, {}).setdefault(f"c{concurrency}", []).append(ms)
    finally:
        await fetcher.close()
    return {kind: {cell: round(statistics.median(values), 3) for cell, values in cells.items()}
            for kind, cells in results.items()}


def store_write_cost(directory: Path, writes: int = 200) -> dict[str, float]:
    """Wall and CPU ms per 4 KB entry written by the store, as it is, and with fsync made a no-op."""
    blob = os.urandom(4000)
    out: dict[str, float] = {}
    real_fsync = os.fsync
    for label, fsync in (("as_is", real_fsync), ("fsync_noop", lambda fd: None)):
        root = Path(tempfile.mkdtemp(dir=directory))
        store = DiskStore(root)
        os.fsync = fsync  # type: ignore[assignment]
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            for index in range(writes):
                store._write(store.path(f"{label}{index:060x}"), blob)
            out[f"{label}_wall_ms"] = round((time.perf_counter() - wall) / writes * 1000, 3)
            out[f"{label}_cpu_ms"] = round((time.process_time() - cpu) / writes * 1000, 3)
        finally:
            os.fsync = real_fsync
            shutil.rmtree(root, ignore_errors=True)
    return out


def loops() -> list[tuple[str, Callable[[Coroutine[object, object, dict[str, dict[str, float]]]],
                                          dict[str, dict[str, float]]]]]:
    """asyncio's own loop, and uvloop's (what `thumbs serve` runs) when installed."""
    found: list = [("asyncio", asyncio.run)]
    try:
        import uvloop
    except ImportError:
        return found
    return [*found, ("uvloop", uvloop.run)]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    ctx = Context(quick=True)
    names = {kind: ctx.corpus_of(kind)[0].name for kind in ("fal_jpeg", "photo4k_jpeg")}
    with origin(ctx.work / "corpus", ctx.work) as origin_:
        for name, runner in loops():
            print(f"fetch CPU ms per source ({name}):", runner(fetch_cpu(origin_.base_url, names, rounds, 40)),
                  flush=True)
    print("store write:", store_write_cost(ctx.work))


if __name__ == "__main__":
    main()
