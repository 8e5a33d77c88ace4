"""Deterministic stand-in for the product's AI outputs: seeded, generated with pyvips, no downloads.

The "realistic" profile matches real traffic (1-5 MB PNGs and JPEGs, mostly 1024x1024,
1024x1536 and 1792x1024, some 2-4K photos); "small" is the same mix scaled down, for tests.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pyvips

# (width, height, weight): the shapes Fal and GPT-image return, plus camera photos.
AI_SHAPES = [(1024, 1024, 50), (1024, 1536, 20), (1792, 1024, 20)]
PHOTO_SHAPES = [(2048, 1536, 4), (3024, 4032, 3), (3840, 2160, 3)]
PROFILE_SCALE = {"realistic": 1.0, "small": 0.25}


@dataclass(frozen=True)
class DemoImage:
    name: str
    data: bytes
    width: int
    height: int


def _pick_shape(rng: random.Random) -> tuple[int, int, bool]:
    shapes = [(w, h, weight, False) for w, h, weight in AI_SHAPES]
    shapes += [(w, h, weight, True) for w, h, weight in PHOTO_SHAPES]
    width, height, _, photo = rng.choices(shapes, weights=[s[2] for s in shapes])[0]
    return width, height, photo


def _gradient(width: int, height: int, rng: random.Random) -> pyvips.Image:
    angle = rng.uniform(0, 2 * math.pi)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    xyz = pyvips.Image.xyz(width, height)
    span = abs(cos_a) * width + abs(sin_a) * height
    offset = min(0.0, cos_a * width) + min(0.0, sin_a * height)
    t = (xyz[0] * cos_a + xyz[1] * sin_a - offset) / span
    start = [rng.randint(0, 255) for _ in range(3)]
    end = [rng.randint(0, 255) for _ in range(3)]
    bands = [t * (e - s) + s for s, e in zip(start, end, strict=True)]
    return bands[0].bandjoin(bands[1:])


def _blobs(image: pyvips.Image, rng: random.Random) -> pyvips.Image:
    width, height = image.width, image.height
    xyz = pyvips.Image.xyz(width, height)
    for _ in range(rng.randint(3, 7)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.08, 0.35) * min(width, height)
        distance = ((xyz[0] - cx) ** 2 + (xyz[1] - cy) ** 2) ** 0.5
        # Soft edge: 1 inside, fading to 0 over 15 % of the radius.
        edge = (radius - distance) / (0.15 * radius)
        alpha = (edge > 0).ifthenelse(edge, 0)
        alpha = (alpha < 1).ifthenelse(alpha, 1)
        ink = [rng.randint(0, 255) for _ in range(3)]
        image = image * (1 - alpha) + alpha * ink
    return image


def _texture(image: pyvips.Image, rng: random.Random, photo: bool) -> pyvips.Image:
    # Fine grain is what makes real outputs weigh megabytes; photos get coarser blotches too.
    grain = pyvips.Image.gaussnoise(image.width, image.height, sigma=7 if photo else 5, mean=0)
    image = image + grain
    if photo:
        coarse = pyvips.Image.gaussnoise(
            max(1, image.width // 32), max(1, image.height // 32), sigma=25, mean=0
        ).resize(32, kernel="linear")
        coarse = coarse.crop(0, 0, min(coarse.width, image.width), min(coarse.height, image.height))
        coarse = coarse.embed(0, 0, image.width, image.height, extend="copy")
        image = image + coarse
    return image.cast("uchar")


def demo_image(index: int, profile: str = "realistic") -> DemoImage:
    """The ``index``-th demo image; the same index always gives the same bytes."""
    rng = random.Random(index * 7919 + 17)
    width, height, photo = _pick_shape(rng)
    scale = PROFILE_SCALE[profile]
    width, height = max(16, int(width * scale)), max(16, int(height * scale))
    # Gradients and blobs are smooth: paint them at 1/8 size and enlarge, then add full-size grain.
    small_w, small_h = max(2, width // 8), max(2, height // 8)
    smooth = _blobs(_gradient(small_w, small_h, rng), rng)
    smooth = smooth.resize(width / small_w, vscale=height / small_h, kernel="linear")
    image = _texture(smooth, rng, photo)
    image = image.copy(interpretation="srgb")
    if photo or rng.random() < 0.3:
        data = image.jpegsave_buffer(Q=97 if profile == "realistic" else 80)
        extension = "jpg"
    else:
        data = image.pngsave_buffer(compression=1 if profile == "realistic" else 6)
        extension = "png"
    return DemoImage(name=f"img-{index:05d}.{extension}", data=data, width=width, height=height)
