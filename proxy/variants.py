"""Named output variants. A URL names its variant, so adding one never changes old URLs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    max_side: int
    quality: int
    format: str = "jpeg"
    extension: str = "jpg"
    media_type: str = "image/jpeg"
    # Square, centre-cropped to the cell instead of fitted inside the box with its aspect kept.
    crop: bool = False
    # Output cap: the encoder steps its quality down until the bytes fit.
    max_bytes: int = 20_000


# The product's thumbnail (the PRD's `thumbnail_url`): JPEG, quality 65, longest side at most 200 px.
THUMB = Variant(name="thumb", max_side=200, quality=65)
# The picker's square cells (~120-200 CSS px), at 1x and 2x: with srcset a 2x screen gets at
# least 0.8 source pixels per device pixel. The 2x one trades quality for bytes, as high-density
# images can (details are half the size on screen), so a 2x first screen stays small.
CELL = Variant(name="cell", max_side=200, quality=65, crop=True)
CELL_2X = Variant(name="cell2x", max_side=400, quality=50, crop=True, max_bytes=40_000)

VARIANTS: dict[str, Variant] = {variant.name: variant for variant in (THUMB, CELL, CELL_2X)}
DEFAULT_VARIANT = THUMB
# Made together with the default thumbnail when an image is warmed (ingest, backfill).
WARMED_WITH_DEFAULT: tuple[Variant, ...] = (CELL, CELL_2X)
