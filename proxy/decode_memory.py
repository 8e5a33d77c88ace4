"""How much memory decoding a source will take, read from its header before any decoding.

A pixel count is not a memory bound: a 405 KB interlaced 16-bit RGBA PNG of 7000x7000 is
under a 50 MP cap, yet libvips must hold all of it (392 MB) before the first shrunk row
comes out. So the budget counts ``width x height x bands x bytes per sample`` (libvips
gives bands and sample format from the header alone) for every format libvips decodes whole:

- interlaced (Adam7) PNG and progressive JPEG: a pass covers the whole image, so there is no
  stream and no shrink-on-load benefit; a progressive JPEG's coefficients are 16-bit;
- GIF, WebP, AVIF/HEIC (their decoders produce whole frames) and TIFF (a strip or tile can
  be the whole image: counted at full size, whatever the layout). AVIF/HEIC count more than
  the frame: libheif keeps the decoded planes and its own interleaved copy of the frame besides
  libvips' (:data:`HEIF_FRAMES`, :data:`HEIF_BYTES_PER_PIXEL`).

Baseline JPEG and non-interlaced PNG decode as a stream of rows into the shrink, so what
they hold is a window of rows (:data:`STREAM_ROWS`) across the full width. A wide PNG or GIF
(:data:`WIDE`) holds far more rows of its width than that while it is resized (:data:`WIDE_ROWS`).
Over the budget is a 413 ``too_large`` naming the need and the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyvips

from proxy import sniff as formats
from proxy.sniff import Body

BYTES_PER_SAMPLE = {
    "uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4,
    "complex": 8, "double": 8, "dpcomplex": 16,
}
# Rows a streamed decode keeps in flight (libvips' line buffers and the shrink's window).
STREAM_ROWS = 256
# libjpeg keeps a progressive image's DCT coefficients, 16 bits each, for every sample.
COEFFICIENT_BYTES = 2
# libheif + libaom for an AVIF, measured as peak RSS growth over the frame's own size: 15.3 bytes
# a pixel for 8-bit RGB (4:2:0), 18.3 for 4:4:4, 16.6 with alpha, 18.4 for 10-bit (a 1.5 KB
# 7000 x 7000 AVIF grew a worker by 716 MB, against a 147 MB frame). Counted as three frames
# plus ten bytes a pixel, which covers each of them.
HEIF_FRAMES = 3
HEIF_BYTES_PER_PIXEL = 10
# A source at least WIDE times as wide as tall: libvips holds up to about 1,400 rows of its full
# width while it is shrunk, twice the height and more when it is shorter (peak RSS growth, in
# rows of the source's own width: 65535 x 762 RGBA 16-bit PNG 725 for the 200 px thumbnail,
# 1,392 for the square cell, +730 MB against 134 MB counted; 65535 x 16: 244; 30000 x 1600 cell:
# 1,092; a GIF canvas of 65535 x 762: 450 MB against its 200 MB frame). Counted as
# min(2 x height + STREAM_ROWS, WIDE_ROWS) rows, on top of the frame where that is held whole.
# A narrower source holds as many rows too (8000 x 6000 RGBA 16-bit: ~1,100), but under the
# default pixel cap its rows are at most 14,142 px (113 KB), which WIDE_ROWS keeps under the budget.
WIDE = 4
WIDE_ROWS = 1536


@dataclass(frozen=True)
class DecodeCost:
    bytes: int
    streamed: bool
    description: str  # e.g. "7000x7000 interlaced png, 4 bands of 16 bits"


def decode_cost(
    data: Body, fmt: str, header: pyvips.Image, width: int | None = None, height: int | None = None
) -> DecodeCost:
    """``width`` and ``height``: the header's, when the caller has read them already (each read
    is several libvips calls, each a GIL hand-off)."""
    width = header.width if width is None else width
    height = header.height if height is None else height
    sample = BYTES_PER_SAMPLE.get(str(header.format), 8)
    return cost(fmt, width, height, header.bands, sample, _interlaced(data, fmt, header))


def cost(fmt: str, width: int, height: int, bands: int, sample: int, interlaced: bool) -> DecodeCost:
    """The same figure from header facts read without libvips (:mod:`proxy.jpeg_header`)."""
    layout = "interlaced " if interlaced else ""
    description = f"{width}x{height} {layout}{fmt}, {bands} band{'s' if bands != 1 else ''} of {sample * 8} bits"
    row = width * bands * sample
    wide = fmt in (formats.PNG, formats.GIF) and width >= WIDE * height
    window = row * min(2 * height + STREAM_ROWS, WIDE_ROWS) if wide else 0
    if fmt in (formats.JPEG, formats.PNG) and not interlaced:
        return DecodeCost(max(row * min(height, STREAM_ROWS), window), True, description)
    if fmt == formats.JPEG:  # progressive
        sample = max(sample, COEFFICIENT_BYTES)
    if fmt in (formats.AVIF, formats.HEIC):
        pixels = width * height
        return DecodeCost(pixels * (bands * sample * HEIF_FRAMES + HEIF_BYTES_PER_PIXEL), False, description)
    return DecodeCost(width * height * bands * sample + window, False, description)


def _interlaced(data: Body, fmt: str, header: pyvips.Image) -> bool:
    if header.get_typeof("interlaced") and header.get("interlaced"):
        return True
    # The PNG header says it directly (IHDR is the first chunk; byte 28 is the interlace method).
    return fmt == formats.PNG and data[12:16] == b"IHDR" and len(data) > 28 and data[28] != 0


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 10_000_000 else f"{size / 1e6:.1f} MB"
