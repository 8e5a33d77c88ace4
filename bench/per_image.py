"""Section 1: per-image cost in-process. Our pipeline vs Pillow (draft + thumbnail) vs plain pyvips.

Each method gets the source bytes already in memory and returns a 200 px JPEG at quality 65;
one thread each (libvips concurrency 1, as the proxy configures it: its parallelism comes
from running images side by side). SSIM is measured on luma against a reference made by
decoding the whole source and resizing it with Lanczos in one step (Pillow, reducing_gap off)
to the candidate's exact size.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pyvips
from PIL import Image

from bench.context import Context
from bench.ssim import ssim
from bench.stats import summary_ms
from proxy.pipeline import configure_libvips, encode, materialise, render
from proxy.variants import THUMB

BOX, QUALITY = THUMB.max_side, THUMB.quality
MAX_PIXELS = 50_000_000
KINDS = ("photo4k_jpeg", "ai1024_png", "webp", "large_png")
T = TypeVar("T")


def ours(data: bytes) -> bytes:
    return render(data, THUMB, MAX_PIXELS).data


def pillow(data: bytes) -> bytes:
    source = Image.open(io.BytesIO(data))
    source.draft("RGB", (BOX, BOX))  # JPEG only: DCT scaling, decodes at 1/2..1/8 size
    image = source.convert("RGB")
    image.thumbnail((BOX, BOX))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY, optimize=True)
    return out.getvalue()


def plain_pyvips(data: bytes) -> bytes:
    return pyvips.Image.thumbnail_buffer(data, BOX, height=BOX).jpegsave_buffer(Q=QUALITY)


METHODS: dict[str, Callable[[bytes], bytes]] = {"ours": ours, "pillow": pillow, "pyvips": plain_pyvips}


@dataclass
class Reference:
    """The source decoded once at full size; resized on demand to each candidate's size."""

    full: Image.Image

    def at(self, size: tuple[int, int]) -> np.ndarray:
        return np.asarray(self.full.resize(size, Image.Resampling.LANCZOS, reducing_gap=None))


def decode_rgb(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def run(ctx: Context) -> dict[str, Any]:
    """Every method once per image per round, rounds over the whole corpus one after another and the
    methods' order rotating (round and image), so drift on a shared machine falls on all three alike."""
    configure_libvips(1)
    rounds = int(ctx.scaled(5, 3))
    images = [(image, image.path.read_bytes()) for image in ctx.corpus if image.kind in KINDS]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for image, data in images:
        reference = Reference(Image.open(io.BytesIO(data)).convert("RGB"))
        for name, method in METHODS.items():
            output = method(data)  # warm-up, and the output we score (deterministic: one is enough)
            decoded = decode_rgb(output)
            score = ssim(decoded, reference.at((decoded.shape[1], decoded.shape[0])))
            rows[(image.name, name)] = {
                "image": image.name, "kind": image.kind, "method": name, "source_bytes": len(data),
                "times_s": [], "cpu_s": [], "output_bytes": len(output),
                "output_size": [decoded.shape[1], decoded.shape[0]], "ssim": round(score, 4),
            }
    names = list(METHODS)
    for round_ in range(rounds):
        for index, (image, data) in enumerate(images):
            shift = (round_ + index) % len(names)
            for name in names[shift:] + names[:shift]:
                started, cpu_started = time.perf_counter(), time.process_time()
                METHODS[name](data)
                row = rows[(image.name, name)]
                row["times_s"].append(round(time.perf_counter() - started, 5))
                # CPU seconds of the whole process (every libvips thread): steadier than wall time
                # when other work shares the machine.
                row["cpu_s"].append(round(time.process_time() - cpu_started, 5))
    listed = list(rows.values())
    breakdown = [steps(ctx.corpus_of(kind)[0].path.read_bytes(), kind, rounds + 2) for kind in KINDS]
    return {"repeats": rounds, "rounds": rounds, "box": BOX, "quality": QUALITY, "rows": listed,
            "summary": summarize(listed), "breakdown": breakdown}


def steps(data: bytes, kind: str, repeats: int) -> dict[str, Any]:
    """Median ms (and [min-max] over the repeats) of the libvips calls our pipeline is made of, to say
    where the time goes.

    Timed through pyvips directly (the pipeline's internals change; these calls do not).
    """
    timings: dict[str, list[float]] = {}

    def timed(name: str, function: Callable[[], T]) -> T:
        started = time.perf_counter()
        value = function()
        timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return value

    for _ in range(repeats):
        timed("whole pipeline", lambda: ours(data))
        timed("header read", lambda: pyvips.Image.new_from_buffer(data, "", access="sequential").width)
        image = timed("decode+shrink (thumbnail_buffer)", lambda: pyvips.Image.thumbnail_buffer(
            data, BOX, height=BOX, size="down", no_rotate=True).copy_memory())
        # partial binds this round's image now (a lambda would close over the loop variable).
        timed("JPEG encode, trellis", partial(
            image.jpegsave_buffer, Q=QUALITY, optimize_coding=True, trellis_quant=True, keep="none",
            subsample_mode="on"))
        timed("JPEG encode, no trellis", partial(
            image.jpegsave_buffer, Q=QUALITY, optimize_coding=True, keep="none", subsample_mode="on"))
        # What the pipeline runs since 2026-12-02: the same bytes as the row above, on the calling thread.
        timed("JPEG encode, ours (Pillow's libjpeg-turbo)", partial(encode, materialise(image), THUMB))
    return {"kind": kind, "repeats": repeats,
            "steps": {name: round(float(np.median(values)), 2) for name, values in timings.items()},
            "spread": {name: [round(min(values), 2), round(max(values), 2)] for name, values in timings.items()}}


def _round_medians(members: list[dict[str, Any]], key: str) -> list[float]:
    """Per round, the median over the kind's images of that round's sample, in ms."""
    rounds = min(len(row[key]) for row in members)
    return [round(float(np.median([row[key][r] for row in members])) * 1000, 2) for r in range(rounds)]


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (kind, method): the median of the per-round medians and every round's (the spread), a p95 over
    every sample, bytes and SSIM (deterministic outputs: no spread to show)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row["kind"]), str(row["method"])), []).append(row)
    summary = []
    for (kind, method), members in groups.items():
        times = [t for row in members for t in row["times_s"]]
        sizes = [int(row["output_bytes"]) for row in members]
        scores = [float(row["ssim"]) for row in members]
        wall, cpu = _round_medians(members, "times_s"), _round_medians(members, "cpu_s")
        summary.append({
            "kind": kind, "method": method, **summary_ms(times),
            "median_ms": round(float(np.median(wall)), 3), "round_ms": wall,
            "cpu_median_ms": round(float(np.median(cpu)), 2), "cpu_round_ms": cpu,
            "bytes_median": int(np.median(sizes)), "bytes_max": max(sizes),
            "ssim_mean": round(float(np.mean(scores)), 4), "images": len(members),
        })
    return summary
