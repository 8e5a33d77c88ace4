"""How much memory decoding a source will take, read from its header before any decoding.

A pixel count is not a memory bound: a 405 KB interlaced 16-bit RGBA PNG of 7000x7000 is
under a 50 MP cap, yet libvips must hold all of it (392 MB) before the first shrunk row
comes out. So the budget counts ``width x height x bands x bytes per sample`` (libvips
gives bands and sample format from the header alone) for every format libvips decodes whole:

- interlaced (Adam7) PNG and progressive JPEG: a pass covers the whole image, so there is no
  stream and no shrink-on-load benefit; a progressive JPEG's coefficients are 16-bit; the PNG is
  then resized from memory, which holds rows as a streamed one's resize does;
- GIF (libnsgif's frame is 4 bytes a pixel, :data:`GIF_BYTES_PER_PIXEL`), WebP, AVIF/HEIC
  (their decoders produce whole frames) and TIFF (a strip or tile can
  be the whole image: counted at full size, whatever the layout). AVIF/HEIC count more than
  the frame: libheif keeps the decoded planes and its own interleaved copy of the frame besides
  libvips' (:data:`HEIF_FRAMES`, :data:`HEIF_BYTES_PER_PIXEL`).

Baseline JPEG and non-interlaced PNG decode as a stream of rows into the shrink, so what
they hold is rows across the full width, not the frame. For a JPEG (shrunk on load) that is a
window of :data:`STREAM_ROWS`; a PNG, and a GIF's rows after libnsgif's frame, hold what libvips'
line caches and the resize hold (:func:`streamed_bytes`), measured across shapes and bit depths.
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
# min(2 x height + STREAM_ROWS, WIDE_ROWS) rows, on top of the frame where that is held whole
# (40000 x 1250 RGB PNG, 50 MP: +97 MB thumb, +184 cell, +188 cell2x, 1,570 rows; counted 204).
# With an embedded profile it holds what a narrower one does (16000 x 3000 RGBA 16-bit: +246 MB).
WIDE = 4
WIDE_ROWS = 1664
# What libvips 8.18 holds while it shrinks a streamed PNG (or a GIF's rows) into a thumbnail, in
# rows of the full width (libvips' concurrency 1: a sink buffer of 128 lines):
# - LOADER_ROWS of the source's own format: the loader's line cache (vips_sequential, 16-line
#   strips, 4 x 128 lines kept);
# - up to RESIZE_ROWS more, in 8 bits a sample (thumbnail turns 16-bit into 8-bit sRGB before the
#   resize): the line caches after the shrinkv and after the reducev (51 strips of 10 lines each,
#   510 lines) and the region buffers between them; about twice the height, plus 256, for a short
#   source. With an embedded profile libvips resizes in the source's format and transforms after:
#   PROFILE_RESIZE_ROWS of that (16000 x 3000 RGBA 16-bit with a profile: +246 MB for cell2x,
#   +137 MB for thumb, counted 266 MB; without one +142, counted 201);
# - a tall source cropped square (the cell variants) reads down to its centre and holds rows on
#   the way: up to 1.38 x height / 2 / shrink rows of its format, shrink = width / CROP_BOX (480 x
#   20000 RGB; a 399 x 65535 16-bit RGBA PNG grew a worker by 108 MB for cell2x, 4 MB for thumb),
#   counted as 3/4 x height / shrink;
# - STREAM_OVERHEAD whatever the size (a 300 x 300 PNG: +1.5 MB).
# Peak RSS growth over 71 shapes (300 to 12000 a side and 399 to 2000 x 20000 to 65535; 8- and
# 16-bit grey, grey + alpha, RGB, RGBA; each variant, a fresh process each) is at most 0.94 of
# this count; e.g. 1200 x 1200 RGBA 16-bit +12.9 MB thumb, +14.5 cell2x (counted 17.5);
# 12000 x 6000 RGBA 16-bit +126.7 (counted 139). The 256-row window counted 2.5 and 24.6 MB.
LOADER_ROWS = 512
RESIZE_ROWS = 1792
PROFILE_RESIZE_ROWS = 1536
CROP_BOX = 400  # the largest square variant (cell2x)
STREAM_OVERHEAD = 4_000_000

# libnsgif decodes a GIF into a frame of 4 bytes a pixel whatever libvips reports (3 bands without
# transparency): a 7000 x 7000 GIF grew a worker by 229-236 MB (3 bands), 245-254 MB (4 bands).
GIF_BYTES_PER_PIXEL = 4

@dataclass(frozen=True)
class DecodeCost:
    bytes: int
    streamed: bool
    description: str  # e.g. "7000x7000 interlaced png, 4 bands of 16 bits"


def decode_cost(
    data: Body, fmt: str, header: pyvips.Image, width: int | None = None, height: int | None = None,
    profile: bool | None = None,
) -> DecodeCost:
    """``width``, ``height`` and whether it has an ICC ``profile``: the header's, when the caller
    has read them already (each read is several libvips calls, each a GIL hand-off)."""
    width = header.width if width is None else width
    height = header.height if height is None else height
    sample = BYTES_PER_SAMPLE.get(str(header.format), 8)
    if profile is None:
        profile = bool(header.get_typeof("icc-profile-data"))
    return cost(fmt, width, height, header.bands, sample, _interlaced(data, fmt, header), profile)


def cost(
    fmt: str, width: int, height: int, bands: int, sample: int, interlaced: bool, profile: bool = False
) -> DecodeCost:
    """The same figure from header facts read without libvips (:mod:`proxy.jpeg_header`)."""
    layout = "interlaced " if interlaced else ""
    description = f"{width}x{height} {layout}{fmt}, {bands} band{'s' if bands != 1 else ''} of {sample * 8} bits"
    row = width * bands * sample
    wide = fmt in (formats.PNG, formats.GIF) and width >= WIDE * height
    window = row * min(2 * height + STREAM_ROWS, WIDE_ROWS) if wide else 0
    if fmt == formats.PNG and not interlaced:
        return DecodeCost(streamed_bytes(width, height, bands, sample, profile), True, description)
    if fmt == formats.JPEG and not interlaced:
        return DecodeCost(row * min(height, STREAM_ROWS), True, description)
    if fmt == formats.JPEG:  # progressive
        sample = max(sample, COEFFICIENT_BYTES)
    if fmt in (formats.AVIF, formats.HEIC):
        pixels = width * height
        return DecodeCost(pixels * (bands * sample * HEIF_FRAMES + HEIF_BYTES_PER_PIXEL), False, description)
    if fmt == formats.GIF:  # libnsgif's frame, then libvips' rows of it streamed into the resize
        frame = width * height * GIF_BYTES_PER_PIXEL
        return DecodeCost(frame + streamed_bytes(width, height, bands, 1), False, description)
    if fmt == formats.PNG:  # interlaced: decoded whole into memory, then resized from there
        frame = width * height * bands * sample
        return DecodeCost(frame + max(window, _resized(width, height, bands, sample, profile)) + STREAM_OVERHEAD,
                          False, description)
    return DecodeCost(width * height * bands * sample + window, False, description)


def streamed_bytes(width: int, height: int, bands: int, sample: int, profile: bool = False) -> int:
    """What libvips holds while it resizes a source it reads as a stream of rows (see
    :data:`RESIZE_ROWS`): its line caches, a tall source's rows down to a square crop's centre;
    for a wide one :data:`WIDE_ROWS` (and the line caches where that is more, with a profile)."""
    row = width * bands * sample
    held = row * min(height, LOADER_ROWS) + _resized(width, height, bands, sample, profile)
    if width >= WIDE * height:  # measured apart: fewer rows, except with a profile
        window = row * min(2 * height + STREAM_ROWS, WIDE_ROWS)
        held = max(held, window) if profile else window
    if height > width:
        shrink = max(1.0, width / CROP_BOX)
        held += row * int(0.75 * height / shrink)
    return held + STREAM_OVERHEAD


def _resized(width: int, height: int, bands: int, sample: int, profile: bool) -> int:
    """The resize's line caches and buffers (:data:`RESIZE_ROWS`), whatever the loader holds."""
    resized = width * bands * min(2 * height + STREAM_ROWS, RESIZE_ROWS)
    if profile:
        resized = max(resized, width * bands * sample * min(2 * height + STREAM_ROWS, PROFILE_RESIZE_ROWS))
    return resized


def _interlaced(data: Body, fmt: str, header: pyvips.Image) -> bool:
    if header.get_typeof("interlaced") and header.get("interlaced"):
        return True
    # The PNG header says it directly (IHDR is the first chunk; byte 28 is the interlace method).
    return fmt == formats.PNG and data[12:16] == b"IHDR" and len(data) > 28 and data[28] != 0


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 10_000_000 else f"{size / 1e6:.1f} MB"
