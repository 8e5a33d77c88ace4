"""The benchmark corpus: deterministic generated images, made once under var/bench/corpus.

The kinds the issues name: 4K photo JPEGs, 1024x768 JPEGs (Fal-like), 1024x1024 PNGs (the product's AI
outputs), WebP, and a few large PNGs. Content is smooth shapes plus grain and hard edges,
so encoders and resamplers have detail to lose (SSIM) and bytes to spend.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyvips


@dataclass(frozen=True)
class Kind:
    name: str
    width: int
    height: int
    format: str  # "jpg" | "png" | "webp"
    photo: bool  # coarse blotches and heavier grain, like a camera photo


KINDS = {
    "photo4k_jpeg": Kind("photo4k_jpeg", 3840, 2160, "jpg", True),
    # What a Fal-style generator returns: a 1024x768 JPEG (most Playground outputs).
    "fal_jpeg": Kind("fal_jpeg", 1024, 768, "jpg", True),
    "ai1024_png": Kind("ai1024_png", 1024, 1024, "png", False),
    "webp": Kind("webp", 1536, 1024, "webp", True),
    "large_png": Kind("large_png", 4096, 4096, "png", False),
    # The size of the photo in imgproxy's published benchmark (7360x4912 JPEG).
    "huge_jpeg": Kind("huge_jpeg", 7360, 4912, "jpg", True),
}
# Images per kind in the full and the quick run.
COUNTS = {
    "full": {"fal_jpeg": 8, "photo4k_jpeg": 8, "ai1024_png": 8, "webp": 4, "large_png": 2, "huge_jpeg": 1},
    "quick": {"fal_jpeg": 3, "photo4k_jpeg": 3, "ai1024_png": 3, "webp": 2, "large_png": 1, "huge_jpeg": 1},
}


@dataclass(frozen=True)
class CorpusImage:
    kind: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def _painted(kind: Kind, seed: int) -> pyvips.Image:
    rng = random.Random(seed)
    small_w, small_h = kind.width // 8, kind.height // 8
    xyz = pyvips.Image.xyz(small_w, small_h)
    angle = rng.uniform(0, 2 * math.pi)
    t = (xyz[0] * math.cos(angle) + xyz[1] * math.sin(angle)) / (small_w + small_h) + 0.5
    start, end = [rng.randint(0, 255) for _ in range(3)], [rng.randint(0, 255) for _ in range(3)]
    bands = [t * (e - s) + s for s, e in zip(start, end, strict=True)]
    image = bands[0].bandjoin(bands[1:])
    for _ in range(rng.randint(4, 8)):
        cx, cy = rng.uniform(0, small_w), rng.uniform(0, small_h)
        radius = rng.uniform(0.08, 0.35) * min(small_w, small_h)
        distance = ((xyz[0] - cx) ** 2 + (xyz[1] - cy) ** 2) ** 0.5
        alpha = ((radius - distance) / (0.15 * radius)).maxpair(0).minpair(1)
        image = image * (1 - alpha) + alpha * [rng.randint(0, 255) for _ in range(3)]
    image = image.resize(8, kernel="linear")
    # Hard edges: thin bars and rectangles survive shrinking and show blur or ringing.
    for _ in range(rng.randint(6, 12)):
        w, h = rng.randint(kind.width // 60, kind.width // 6), rng.randint(kind.height // 60, kind.height // 6)
        x, y = rng.randint(0, kind.width - w), rng.randint(0, kind.height - h)
        image = image.draw_rect([rng.randint(0, 255) for _ in range(3)], x, y, w, h, fill=True)
    grain = pyvips.Image.gaussnoise(kind.width, kind.height, sigma=8 if kind.photo else 4, mean=0)
    image = image + grain
    if kind.photo:
        coarse = pyvips.Image.gaussnoise(kind.width // 32, kind.height // 32, sigma=20, mean=0)
        coarse = coarse.resize(32, kernel="linear")
        image = image + coarse.embed(0, 0, kind.width, kind.height, extend="copy")
    return image.cast("uchar").copy(interpretation="srgb")


def encode(kind: Kind, image: pyvips.Image) -> bytes:
    if kind.format == "jpg":
        return image.jpegsave_buffer(Q=90)
    if kind.format == "webp":
        return image.webpsave_buffer(Q=85)
    return image.pngsave_buffer(compression=6)


def build_corpus(directory: Path, size: str) -> list[CorpusImage]:
    """Make sure every image of the ``size`` ("full" or "quick") corpus exists; return them."""
    directory.mkdir(parents=True, exist_ok=True)
    images: list[CorpusImage] = []
    for kind_name, count in COUNTS[size].items():
        kind = KINDS[kind_name]
        for index in range(count):
            path = directory / f"{kind.name}-{index:02d}.{kind.format}"
            if not path.exists():
                partial = path.with_suffix(".part")
                partial.write_bytes(encode(kind, _painted(kind, seed=zlib.crc32(f"{kind.name}/{index}".encode()))))
                partial.replace(path)
            images.append(CorpusImage(kind.name, path))
    return images
