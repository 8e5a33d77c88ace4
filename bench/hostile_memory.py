"""Peak memory of one proxy worker under hostile origins (issue 11 §1), for docs/RELIABILITY.md.

    .venv/bin/python -m bench.hostile_memory [--quick]

A loopback origin (in this process, counting requests) serves 20 MB JPEGs and four bomb
classes; the proxy runs alone as its own uvicorn process (one worker, MALLOC_ARENA_MAX=2 as
`thumbs serve`/`thumbs stack` run it), and its memory is read from /proc/<pid>/status:
VmHWM (peak resident set), reset between scenarios by writing 5 to /proc/<pid>/clear_refs.

Scenarios:
- ``burst``: 100 concurrent cold misses for distinct 20 MB sources, then every 503 retried
  after its Retry-After until all are 200; with the default admission settings, with smaller
  budgets, and with admission opened up (the shape of the old behaviour: every download at once).
- ``bombs``: one request each for stacked gzip, a deflate bomb, a huge-dimension PNG and an
  interlaced 16-bit RGBA PNG of 7000x7000, with default limits; the interlaced PNG again with
  the decode budget opened up, to show what it would have cost.

Results go to bench/results/hostile_memory.json (compact).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gzip
import os
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyvips
import uvicorn

from bench.context import ROOT
from bench.services import PYTHON, free_port, running
from proxy.urls import thumbnail_path

MB = 1_000_000
SECRET = "bench-hostile"
RESULTS = ROOT / "bench" / "results" / "hostile_memory.json"


# ---------------------------------------------------------------- bodies


def big_jpeg(target: int = 20 * MB) -> bytes:
    """A real JPEG of about ``target`` bytes (noise compresses badly, as a camera original does)."""
    width, height = 3900, 2600
    for _ in range(6):
        noise = pyvips.Image.gaussnoise(width, height, sigma=60, mean=128).cast("uchar")
        data = noise.bandjoin([noise, noise.rot180()]).copy(interpretation="srgb").jpegsave_buffer(Q=97)
        if abs(len(data) - target) <= target * 0.03:
            break
        scale = (target / len(data)) ** 0.5
        width, height = int(width * scale), int(height * scale)
    return data


def zeros_compressed(size: int, wbits: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b"\0" * MB
    parts = [compressor.compress(block) for _ in range(size // MB)]
    return b"".join(parts) + compressor.flush()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def huge_dimension_png(side: int = 100_000) -> bytes:
    """Declares side x side RGB (30 GB decoded); the body is a few hundred bytes."""
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def interlaced_rgba16_png(side: int = 7000) -> bytes:
    """A valid Adam7 16-bit RGBA PNG of zero pixels, compressed row by row (~0.4 MB)."""
    compressor = zlib.compressobj(9)
    parts: list[bytes] = []
    for x0, y0, dx, dy in ADAM7:
        width, height = -(-(side - x0) // dx), -(-(side - y0) // dy)
        row = b"\0" * (1 + width * 8)
        parts.extend(compressor.compress(row) for _ in range(height))
    parts.append(compressor.flush())
    ihdr = side.to_bytes(4, "big") * 2 + bytes([16, 6, 0, 0, 1])
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(
        b"IEND", b"")


# ---------------------------------------------------------------- the origin


class Origin:
    """ASGI: ``routes[path] = (body, headers)``; counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.hits: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.hits[path] += 1
        body, headers = self.routes.get(path, (b"not found", {}))
        status = 200 if path in self.routes else 404
        raw = [(b"content-length", str(len(body)).encode())]
        raw += [(name.encode(), value.encode()) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def origin_server(app: Origin) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# ---------------------------------------------------------------- the proxy and its memory


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


@contextlib.contextmanager
def proxy_process(origin_host: str, work: Path, **settings: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        "MALLOC_ARENA_MAX": "2",
        "THUMBS_SECRET": SECRET,
        "THUMBS_ALLOWED_SOURCES": origin_host,
        "THUMBS_ALLOW_PRIVATE_SOURCES": "true",
        "THUMBS_DATA_DIR": str(work / f"data-{port}"),
        "THUMBS_NEGATIVE_TTL": "0",
        "THUMBS_WARM_TOKEN": "bench",
        "THUMBS_ADMIN_TOKEN": "bench",
        "THUMBS_INGEST_TOKEN": "bench",
        **{f"THUMBS_{name.upper()}": value for name, value in settings.items()},
    }
    argv = [PYTHON, "-m", "uvicorn", "--factory", "bench.asgi:proxy_app_from_environment", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    with running(argv, work / f"proxy-{port}.log", f"{base}/healthz", env) as process:
        yield base, process.pid


def url_of(base: str, origin_host: str, path: str) -> str:
    return base + thumbnail_path(f"http://{origin_host}{path}", SECRET)


async def burst(base: str, pid: int, origin: Origin, origin_host: str, paths: list[str]) -> dict[str, Any]:
    """All misses at once; each 503 retried after its Retry-After until every one is a 200."""
    reset_peak(pid)
    before_kb = status_kb(pid, "VmRSS")
    hits_before = sum(origin.hits[path] for path in paths)
    first: collections.Counter[int] = collections.Counter()
    final: collections.Counter[int] = collections.Counter()
    retries = 0
    started = time.monotonic()

    async def one(client: httpx.AsyncClient, path: str) -> None:
        nonlocal retries
        attempt = 0
        while True:
            response = await client.get(url_of(base, origin_host, path))
            if attempt == 0:
                first[response.status_code] += 1
            if response.status_code != 503 or attempt >= 20:
                final[response.status_code] += 1
                return
            attempt += 1
            retries += 1
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    limits = httpx.Limits(max_connections=len(paths) + 10, max_keepalive_connections=len(paths) + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(one(client, path) for path in paths))
    return {
        "misses": len(paths),
        "first_attempt_statuses": {str(code): count for code, count in sorted(first.items())},
        "retries_after_503": retries,
        "final_statuses": {str(code): count for code, count in sorted(final.items())},
        "origin_requests": sum(origin.hits[path] for path in paths) - hits_before,
        "seconds": round(time.monotonic() - started, 1),
        "rss_before_mb": round(before_kb / 1024),
        "peak_rss_mb": round(status_kb(pid, "VmHWM") / 1024),
    }


async def one_bomb(base: str, pid: int, origin_host: str, path: str) -> dict[str, Any]:
    reset_peak(pid)
    before_kb = status_kb(pid, "VmRSS")
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=120) as client:
        response = await client.get(url_of(base, origin_host, path))
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    return {
        "status": response.status_code,
        "error": body.get("error"),
        "detail": body.get("detail"),
        "seconds": round(time.monotonic() - started, 2),
        "rss_before_mb": round(before_kb / 1024),
        "peak_rss_mb": round(status_kb(pid, "VmHWM") / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 misses instead of 100")
    parser.add_argument("--misses", type=int, default=0)
    args = parser.parse_args()
    misses = args.misses or (20 if args.quick else 100)

    print("making bodies ...", flush=True)
    jpeg = big_jpeg()
    bombs = {
        "stacked_gzip": (gzip.compress(zeros_compressed(1000 * MB, 16 + zlib.MAX_WBITS), 9),
                         {"content-encoding": "gzip, gzip"}),
        "deflate_bomb": (zeros_compressed(1000 * MB, zlib.MAX_WBITS), {"content-encoding": "deflate"}),
        "huge_dimension_png": (huge_dimension_png(), {}),
        "interlaced_16bit_png": (interlaced_rgba16_png(7000), {}),
    }
    origin = Origin()
    results: dict[str, Any] = {
        "source_bytes": len(jpeg),
        "bomb_wire_bytes": {name: len(body) for name, (body, _) in bombs.items()},
        "machine": {"cpus": os.cpu_count(), "malloc_arena_max": 2, "workers": 1},
    }
    for name, (body, headers) in bombs.items():
        origin.routes[f"/bomb/{name}"] = (body, headers)
    work = Path(tempfile.mkdtemp(prefix="thumbs-hostile-"))
    configs = {
        "defaults": {},
        "budget_100mb": {"max_fetch_bytes_in_flight": str(100 * MB)},
        "budget_100mb_4_fetches": {"max_fetch_bytes_in_flight": str(100 * MB), "max_concurrent_fetches": "4"},
        # Admission opened up: every download runs at once and every miss gets a pool place
        # (the fetch deadline raised too, or the loopback origin cannot serve them all in time).
        "admission_opened": {"max_concurrent_fetches": "100000", "max_fetch_bytes_in_flight": str(10**12),
                             "processing_queue": "1000", "fetch_timeout": "120"},
    }
    with origin_server(origin) as origin_host:
        results["burst"] = {}
        for config, settings in configs.items():
            paths = [f"/{config}/src{index}.jpg" for index in range(misses)]
            for path in paths:
                origin.routes[path] = (jpeg, {"content-type": "image/jpeg"})
            with proxy_process(origin_host, work, **settings) as (base, pid):
                asyncio.run(one_bomb(base, pid, origin_host, "/warm-up-miss"))  # libvips and pools started
                print(f"burst of {misses} ({config}) ...", flush=True)
                results["burst"][config] = {"settings": settings or "defaults",
                                            **asyncio.run(burst(base, pid, origin, origin_host, paths))}
                print(results["burst"][config], flush=True)
        results["bombs"] = {}
        with proxy_process(origin_host, work) as (base, pid):
            asyncio.run(one_bomb(base, pid, origin_host, "/warm-up-miss"))
            for name in bombs:
                results["bombs"][name] = asyncio.run(one_bomb(base, pid, origin_host, f"/bomb/{name}"))
                print(name, results["bombs"][name], flush=True)
        with proxy_process(origin_host, work, max_decode_bytes=str(10**12)) as (base, pid):
            asyncio.run(one_bomb(base, pid, origin_host, "/warm-up-miss"))
            opened = asyncio.run(one_bomb(base, pid, origin_host, "/bomb/interlaced_16bit_png"))
            results["bombs"]["interlaced_16bit_png_without_decode_budget"] = opened
            print("interlaced without budget", opened, flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
