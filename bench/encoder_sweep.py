"""`python -m bench.encoder_sweep`: the JPEG encoder and resize options table in bench/NOTES.md.

Over the full bench corpus (photo4k_jpeg, ai1024_png, webp): one decode per image
(``thumbnail_buffer``, 200 px box, shrink-on-load, lanczos3), then each encoder setting on
that image; Q65, ``optimize_coding``, 4:2:0 and ``keep="none"`` unless the row says otherwise.
Luma SSIM against a full decode resized with Lanczos in one step (``bench.per_image.Reference``).
CPU ms is the encode (for the resize rows, the whole decode+resize) with ``time.process_time``,
median over the images. Prints the markdown table.
"""

from __future__ import annotations

import functools
import io
import statistics
import time
from collections.abc import Callable

import numpy as np
import pyvips
from PIL import Image

from bench.context import Context
from bench.per_image import Reference, decode_rgb, pillow
from bench.ssim import ssim
from proxy.pipeline import configure_libvips

BOX, QUALITY = 200, 65
BASE = {"Q": QUALITY, "optimize_coding": True, "keep": "none", "subsample_mode": "on"}
KINDS = ("photo4k_jpeg", "ai1024_png", "webp")

ENCODERS: dict[str, dict[str, object]] = {
    "trellis (previous pipeline)": {"trellis_quant": True},
    "**plain (chosen)**": {},
    "trellis + overshoot_deringing": {"trellis_quant": True, "overshoot_deringing": True},
    "trellis, quant_table 3": {"trellis_quant": True, "quant_table": 3},
    **{f"quant_table {table}": {"quant_table": table} for table in (1, 2, 3, 4, 5)},
    "interlace (progressive)": {"interlace": True},
    "optimize_coding off": {"optimize_coding": False},
    "subsample off (4:4:4)": {"subsample_mode": "off"},
    "trellis Q70": {"trellis_quant": True, "Q": 70},
    "trellis Q72": {"trellis_quant": True, "Q": 72},
    "plain Q62": {"Q": 62},
}


def _decode(data: bytes, **options: object) -> pyvips.Image:
    return pyvips.Image.thumbnail_buffer(data, BOX, height=BOX, size="down", no_rotate=True, **options).copy_memory()


def _jpeg_shrunk(data: bytes, kernel: str) -> pyvips.Image:
    image = pyvips.Image.jpegload_buffer(data, shrink=8)
    return image.resize(BOX / max(image.width, image.height), kernel=kernel).copy_memory()


RESIZES: dict[str, Callable[[bytes], pyvips.Image]] = {
    "thumbnail `linear=True`": lambda data: _decode(data, linear=True),
    "thumbnail `intent=perceptual`": lambda data: _decode(data, intent="perceptual"),
    **{f"jpegload shrink 8 + resize {kernel}": functools.partial(_jpeg_shrunk, kernel=kernel)
       for kernel in ("lanczos2", "cubic", "mitchell", "linear")},
}


def _cpu(function: Callable[[], object]) -> tuple[object, float]:
    started = time.process_time()
    value = function()
    return value, (time.process_time() - started) * 1000


def sweep(ctx: Context) -> list[tuple[str, str, list[int], list[float], list[float]]]:
    rows: dict[tuple[str, str], tuple[list[int], list[float], list[float]]] = {}

    def add(kind: str, name: str, jpeg: bytes, reference: Reference, ms: float | None) -> None:
        decoded = decode_rgb(jpeg)
        score = ssim(decoded, reference.at((decoded.shape[1], decoded.shape[0])))
        sizes, scores, times = rows.setdefault((kind, name), ([], [], []))
        sizes.append(len(jpeg))
        scores.append(score)
        if ms is not None:
            times.append(ms)

    for kind in KINDS:
        for image in ctx.corpus_of(kind):
            data = image.path.read_bytes()
            reference = Reference(Image.open(io.BytesIO(data)).convert("RGB"))
            add(kind, "Pillow draft+thumbnail, q65, optimize", pillow(data), reference, None)
            decoded, plain_ms = _cpu(functools.partial(_decode, data))
            assert isinstance(decoded, pyvips.Image)
            add(kind, "thumbnail, default (the decode+resize the rows below compare with)",
                decoded.jpegsave_buffer(**BASE), reference, plain_ms)
            for name, options in ENCODERS.items():
                jpeg, ms = _cpu(functools.partial(decoded.jpegsave_buffer, **{**BASE, **options}))
                assert isinstance(jpeg, bytes)
                add(kind, name, jpeg, reference, ms)
            for name, resize in RESIZES.items():
                if name.startswith("jpegload") and not image.path.suffix == ".jpg":
                    continue
                resized, ms = _cpu(functools.partial(resize, data))
                assert isinstance(resized, pyvips.Image)
                timed = ms if name.startswith("thumbnail") else None  # the jpegload rows score kernels only
                add(kind, name, resized.jpegsave_buffer(**BASE), reference, timed)
    return [(kind, name, *values) for (kind, name), values in rows.items()]


def main() -> None:
    configure_libvips(1)
    ctx = Context(quick=False)
    grouped: dict[tuple[str, str], tuple[list[int], list[float], list[float]]] = {}
    for kind, name, sizes, scores, times in sweep(ctx):
        entry = grouped.setdefault((kind, name), ([], [], []))
        entry[0].extend(sizes)
        entry[1].extend(scores)
        entry[2].extend(times)
    counts = {kind: len(ctx.corpus_of(kind)) for kind in KINDS}
    print(f"Corpus: {', '.join(f'{n} {kind}' for kind, n in counts.items())}.\n")
    print("| kind | variant | median bytes | max bytes | mean SSIM | CPU ms |")
    print("|---|---|---:|---:|---:|---:|")
    for (kind, name), (sizes, scores, times) in grouped.items():
        cpu = f"{statistics.median(times):.2f}" if times else ""
        print(f"| {kind} | {name} | {int(np.median(sizes)):,} | {max(sizes):,} | {np.mean(scores):.4f} | {cpu} |")


if __name__ == "__main__":
    main()
