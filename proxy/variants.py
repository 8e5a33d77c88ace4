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


# The product's thumbnail: JPEG, quality 65, longest side at most 200 px.
THUMB = Variant(name="thumb", max_side=200, quality=65)

VARIANTS: dict[str, Variant] = {THUMB.name: THUMB}
DEFAULT_VARIANT = THUMB
