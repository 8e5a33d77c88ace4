"""Section: cold thumbnails beside the peers a user would pick instead (issue 14).

thumbs (`thumbs serve`, one worker), thumbor 7.8 (Pillow; one process, engine thread pool
of one thread per core), Next.js 16's `/_next/image` and ipx 3 (both sharp), on the same
origin, asked for the same job: a 200 px box, aspect kept, quality 65, JPEG out (Next keeps
a PNG source as PNG: it has no way to ask for another format but Accept, and it never
converts PNG to JPEG). Every request's source URL is new, and each answer is checked cold:
our ``X-Thumb-Tier: generated``, Next's ``X-Nextjs-Cache: MISS``, and for every system the
origin's own log (one GET per thumbnail; ipx also sends a HEAD first).

The figure that survives a shared 2-core machine is CPU per thumbnail: user+system time of
the server's whole process tree (``bench.proctree``) over a batch, divided by the batch.
Systems are interleaved in rounds (A B C D, A B C D, ...), the load average is recorded at
each round's start, and every cell is the median of rounds with its spread (min-max).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import httpx
import numpy as np
from PIL import Image

from bench.context import Context
from bench.nginx import Origin, origin
from bench.per_image import Reference
from bench.proctree import cpu_seconds, load_average, machine_busy_seconds
from bench.ssim import ssim
from bench.targets import (
    export_revision,
    ipx_url,
    next_url,
    node_peer_versions,
    node_peers_available,
    ours_settings,
    ours_url,
    serve_ipx,
    serve_next,
    serve_ours_process,
    serve_thumbor_process,
    thumbor_available,
    thumbor_url,
)

CORES = os.cpu_count() or 1
CLASSES = ("fal_jpeg", "photo4k_jpeg", "ai1024_png")
LABELS = {"fal_jpeg": "1024x768 JPEG (Fal-like)", "photo4k_jpeg": "4K JPEG",
          "ai1024_png": "1024x1024 PNG (GPT-image-like)"}


@dataclass
class System:
    name: str
    pid: int  # root of the process tree whose CPU is counted
    make_url: Callable[[str], str]
    headers: dict[str, str] = field(default_factory=dict)
    # (header, value) every cold answer must carry; None: the origin log is the only proof.
    cold_header: tuple[str, str] | None = None
    origin_requests_per_thumbnail: int = 1


@dataclass
class Batch:
    ok: int = 0
    not_ok: int = 0
    cold_confirmed: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    client_cpu_s: float = 0.0  # the load generator (this process)
    machine_busy_s: float = 0.0  # every process on the machine
    sizes: list[int] = field(default_factory=list)


async def _get_all(system: System, urls: list[str], concurrency: int) -> Batch:
    batch = Batch()
    queue = list(reversed(urls))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0), headers=system.headers) as client:

        async def user() -> None:
            while queue:
                url = queue.pop()
                try:
                    response = await client.get(url)
                except httpx.HTTPError:
                    batch.not_ok += 1
                    continue
                if response.status_code != 200:
                    batch.not_ok += 1
                    continue
                batch.ok += 1
                batch.sizes.append(len(response.content))
                if system.cold_header is None or response.headers.get(system.cold_header[0]) == system.cold_header[1]:
                    batch.cold_confirmed += 1

        started_cpu, started = cpu_seconds(system.pid), time.perf_counter()
        started_client, started_machine = time.process_time(), machine_busy_seconds()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        batch.wall_s = time.perf_counter() - started
        batch.cpu_s = cpu_seconds(system.pid) - started_cpu
        batch.client_cpu_s = time.process_time() - started_client
        batch.machine_busy_s = machine_busy_seconds() - started_machine
    return batch


def measure(system: System, origin_: Origin, names: list[str], count: int, concurrency: int, tag: str) -> dict:
    urls = [system.make_url(origin_.url(names[i % len(names)], f"{tag}-{i}")) for i in range(count)]
    batch = asyncio.run(_get_all(system, urls, concurrency))
    requested = _origin_requests(origin_, tag)
    return {
        "ok": batch.ok, "not_ok": batch.not_ok, "cold_confirmed": batch.cold_confirmed,
        "origin_requests": requested, "origin_requests_expected": count * system.origin_requests_per_thumbnail,
        "wall_s": round(batch.wall_s, 3), "cpu_s": round(batch.cpu_s, 3),
        "cpu_ms_per_thumbnail": round(batch.cpu_s * 1000 / batch.ok, 2) if batch.ok else None,
        "thumbnails_per_s": round(batch.ok / batch.wall_s, 1) if batch.wall_s else None,
        "busy_cores": round(batch.cpu_s / batch.wall_s, 2) if batch.wall_s else None,
        # What else the two cores did meanwhile: the load generator, and everything busy at all.
        "client_cpu_ms_per_thumbnail": round(batch.client_cpu_s * 1000 / batch.ok, 2) if batch.ok else None,
        "machine_busy_cores": round(batch.machine_busy_s / batch.wall_s, 2) if batch.wall_s else None,
        "bytes_median": int(np.median(batch.sizes)) if batch.sizes else None,
    }


def _origin_requests(origin_: Origin, tag: str) -> int:
    """Origin requests whose path carries ``tag`` (each batch's sources carry their own)."""
    if not origin_.access_log.exists():
        return 0
    marker = f"/u/{tag}-"
    return sum(1 for line in origin_.access_log.read_text().splitlines() if marker in line)


@contextlib.contextmanager
def systems(ctx: Context, origin_: Origin) -> Iterator[list[System]]:
    host = origin_.base_url.removeprefix("http://")
    with contextlib.ExitStack() as stack:
        base, pid = stack.enter_context(
            serve_ours_process(ours_settings(ctx.work, "peers", host), ctx.work / "ours" / "peers.log"))
        found = [System("thumbs", pid, partial(ours_url, base),
                        cold_header=("x-thumb-tier", "generated"))]
        if baseline := os.environ.get("BENCH_BASELINE"):  # e.g. BENCH_BASELINE=caf9819: before/after
            root = export_revision(baseline, ctx.work)
            base, pid = stack.enter_context(serve_ours_process(
                ours_settings(ctx.work, "peers-baseline", host), ctx.work / "ours" / "peers-baseline.log", root=root))
            found.append(System(f"thumbs@{root.name.removeprefix('revision-')}", pid,
                                partial(ours_url, base),
                                cold_header=("x-thumb-tier", "generated")))
        if thumbor_available():
            base, pid = stack.enter_context(serve_thumbor_process(ctx.work, 1, engine_threads=CORES))
            found.append(System("thumbor", pid, partial(thumbor_url, base)))
        if node_peers_available():
            base, pid = stack.enter_context(serve_next(ctx.work))
            found.append(System("next", pid, partial(next_url, base),
                                headers={"Accept": "image/jpeg"}, cold_header=("x-nextjs-cache", "MISS")))
            base, pid = stack.enter_context(serve_ipx(ctx.work))
            # ipx asks the origin for a HEAD (metadata) and then the GET.
            found.append(System("ipx", pid, partial(ipx_url, base),
                                origin_requests_per_thumbnail=2))
        yield found


def run(ctx: Context) -> dict[str, object]:
    classes = ("fal_jpeg",) if ctx.quick else CLASSES
    rounds = int(ctx.scaled(5, 3))
    # CPU comes from /proc in 10 ms ticks: a cell must spend seconds of it for a few per cent to show
    # (40 thumbnails at c=4 left small-JPEG medians inside their own spread).
    counts = {1: int(ctx.scaled(24, 6)), 4: int(ctx.scaled(100, 16))}
    tag_base = str(int(time.time()))
    raw: list[dict[str, object]] = []
    round_loads: list[dict[str, object]] = []
    with origin(ctx.work / "corpus", ctx.work) as origin_, systems(ctx, origin_) as found:
        names = {kind: [image.name for image in ctx.corpus_of(kind)] for kind in classes}
        for system in found:  # warm-up: imports, pools, connections, JIT
            for kind in classes:
                measure(system, origin_, names[kind], 4, 2, f"{tag_base}-warm-{system.name}-{kind}")
        for round_ in range(rounds):
            round_loads.append({"round": round_, "loadavg": load_average()})
            for kind in classes:
                for concurrency in (4, 1):
                    for system in found:
                        tag = f"{tag_base}-r{round_}-{system.name}-{kind}-c{concurrency}"
                        cell = measure(system, origin_, names[kind], counts[concurrency], concurrency, tag)
                        raw.append({"round": round_, "system": system.name, "kind": kind,
                                    "concurrency": concurrency, **cell})
                        print(f"  r{round_} {kind:13s} c={concurrency} {system.name:8s} "
                              f"{cell['cpu_ms_per_thumbnail']} ms CPU/thumb, {cell['thumbnails_per_s']}/s, "
                              f"{cell['busy_cores']} cores", flush=True)
        quality = [score(system, origin_, ctx, kind, f"{tag_base}-q") for system in found for kind in classes]
    return {"cores": CORES, "rounds": rounds, "counts": counts, "classes": list(classes),
            "systems": [system.name for system in found], "versions": node_peer_versions(),
            "round_loads": round_loads, "raw": raw, "summary": summarize(raw), "quality": quality}


def summarize(raw: list[dict]) -> list[dict[str, object]]:
    """Median of rounds (and min-max) per system, class and concurrency; cold proof totals."""
    cells: dict[tuple[str, str, int], list[dict]] = {}
    for row in raw:
        cells.setdefault((row["system"], row["kind"], row["concurrency"]), []).append(row)
    summary = []
    for (system, kind, concurrency), rows in cells.items():
        entry: dict[str, object] = {"system": system, "kind": kind, "concurrency": concurrency, "rounds": len(rows)}
        for metric in ("cpu_ms_per_thumbnail", "thumbnails_per_s", "busy_cores", "client_cpu_ms_per_thumbnail",
                       "machine_busy_cores"):
            values = [row[metric] for row in rows if row.get(metric) is not None]
            if values:
                entry[metric] = round(statistics.median(values), 2)
                entry[f"{metric}_spread"] = [round(min(values), 2), round(max(values), 2)]
        entry["ok"] = sum(row["ok"] for row in rows)
        entry["not_ok"] = sum(row["not_ok"] for row in rows)
        entry["cold_confirmed"] = sum(row["cold_confirmed"] for row in rows)
        entry["origin_requests"] = sum(row["origin_requests"] for row in rows)
        entry["origin_requests_expected"] = sum(row["origin_requests_expected"] for row in rows)
        summary.append(entry)
    return summary


def score(system: System, origin_: Origin, ctx: Context, kind: str, tag: str) -> dict[str, object]:
    """Bytes, format and luma SSIM of one cold thumbnail per corpus image (up to 3)."""
    sizes: list[int] = []
    scores: list[float] = []
    formats: set[str] = set()
    dims: set[str] = set()
    with httpx.Client(timeout=60, headers=system.headers) as client:
        for index, image in enumerate(ctx.corpus_of(kind)[:3]):
            response = client.get(system.make_url(origin_.url(image.name, f"{tag}-{system.name}-{index}")))
            response.raise_for_status()
            output = Image.open(io.BytesIO(response.content))
            formats.add(output.format or "?")
            decoded = np.asarray(_on_white(output))
            reference = Reference(_on_white(Image.open(image.path)))
            sizes.append(len(response.content))
            dims.add(f"{decoded.shape[1]}x{decoded.shape[0]}")
            scores.append(ssim(decoded, reference.at((decoded.shape[1], decoded.shape[0]))))
    return {"system": system.name, "kind": kind, "bytes_median": int(np.median(sizes)), "bytes_max": max(sizes),
            "ssim_mean": round(float(np.mean(scores)), 4), "formats": sorted(formats), "sizes": sorted(dims)}


def _on_white(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")
