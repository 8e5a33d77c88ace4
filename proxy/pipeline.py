"""The thumbnail pipeline, one named step per function, run in a worker thread.

sniff -> check limits -> decode at reduced size -> orient -> colour -> flatten -> resize ->
encode. Decoding shrinks on load (a 20 MP JPEG is decoded at 1/8 scale), which is where the
speed comes from: libvips' ``thumbnail`` does it, except for plain JPEGs, which libjpeg-turbo
decodes at the same scale (:mod:`proxy.jpeg_turbo`, same pixels, less CPU). The resized pixels
are computed once and encoded on this thread by libjpeg-turbo too (:func:`encode`, the bytes
libvips would write). The other steps are explicit so a reader can see each guarantee.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyvips
from PIL import Image

from proxy import jpeg_header, jpeg_turbo, png_header, tiff_header
from proxy import sniff as formats
from proxy.decode_memory import DecodeCost, cost, decode_cost, megabytes
from proxy.errors import TooLarge, TooManyPixels, Undecodable, UnsupportedType
from proxy.sniff import Body
from proxy.variants import Variant

# No side of the output is ever above this, whatever the quality ladder does.
MAX_OUTPUT_BYTES = 20_000
# Lower qualities tried, in order, on the rare image whose thumbnail is above the cap.
FALLBACK_QUALITIES = (55, 45, 35, 25)
WHITE = (255, 255, 255)
# THUMBS_MAX_DECODE_BYTES' default: what one decode may hold (256 MiB).
DEFAULT_MAX_DECODE_BYTES = 256 * 1024 * 1024
# THUMBS_MAX_SOURCE_SIDE's default: JPEG's own limit on a side.
DEFAULT_MAX_SOURCE_SIDE = 65_535
# libtiff and libvips pay ~4.5 us a tile (deflate) to ~11 us (JPEG) whatever its size: a 7000 x
# 7000 TIFF of 16 x 16 JPEG tiles (191,844 of them) was 2.2 s of CPU, 0.075 s in strips. Real
# tiled TIFFs use 256 or 512 (50 MP: 763 tiles of 256); 64 x 64 tiles still reach 50 MP.
MAX_TIFF_TILES = 16_384


@dataclass(frozen=True)
class SourceInfo:
    format: str
    width: int  # as stored, before orientation
    height: int
    orientation: int
    # An embedded profile, or CMYK (which gets libvips' default CMYK profile), needs an ICC
    # transform; plain RGB is treated as sRGB and skips that costly pass.
    needs_profile: bool


@dataclass(frozen=True)
class Rendered:
    data: bytes  # the JPEG
    width: int  # source size as displayed (after orientation)
    height: int
    color: str  # average colour "#rrggbb", the grid's placeholder
    output_width: int
    output_height: int


def configure_libvips(threads_per_image: int = 1) -> None:
    """Process-wide libvips settings: no operation cache, no untrusted or vector loaders."""
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(threads_per_image)
    # Loaders that libvips marks untrusted (matload, fitsload, ...) are never reachable.
    pyvips.block_untrusted_set(True)
    # SVG would let an image make network or file requests; it is refused before libvips.
    pyvips.operation_block_set("VipsForeignLoadSvg", True)


def render(
    data: Body, variant: Variant, max_pixels: int, max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
    max_side: int = DEFAULT_MAX_SOURCE_SIDE,
) -> Rendered:
    fmt = sniff(data)
    info = check_limits(data, fmt, max_pixels, max_decode_bytes, max_side)
    try:
        image = decode_reduced(data, variant, info, max_decode_bytes)
        image = orient(image, info.orientation)
        image = colour(image)
        image = flatten(image)
        pixels = materialise(resize(image, variant.max_side, square=variant.crop))
    except pyvips.Error as exc:
        raise Undecodable(f"the {fmt} image cannot be decoded: {_first_line(exc)}") from exc
    jpeg = encode(pixels, variant)
    color = average_colour(pixels.data)
    width, height = (info.height, info.width) if info.orientation >= 5 else (info.width, info.height)
    return Rendered(jpeg, width, height, color, pixels.width, pixels.height)


def sniff(data: Body) -> str:
    if not data:
        raise UnsupportedType("the source is empty")
    fmt = formats.sniff(data)
    if fmt == formats.SVG:
        raise UnsupportedType("SVG sources are not rendered")
    if fmt is None:
        raise UnsupportedType("the source is not a supported image (JPEG, PNG, WebP, GIF, AVIF, TIFF, HEIC)")
    return fmt


def check_limits(
    data: Body, fmt: str, max_pixels: int, max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
    max_side: int = DEFAULT_MAX_SOURCE_SIDE,
) -> SourceInfo:
    """Read the header only (lazy load) and refuse pixel, side, memory, scan and page bombs before any decoding."""
    if fmt == formats.JPEG:
        _check_scans(data)
    elif fmt == formats.TIFF:
        _check_tiff_pages(data)
        _check_tiff_scans(data)
    elif fmt == formats.PNG:
        _check_png_chunks(data)
    plain = jpeg_header.read(data) if fmt == formats.JPEG else None
    if fmt == formats.JPEG and plain is None:  # a plain JPEG has no profile
        _check_jpeg_profile(data)
    if plain is not None:  # a plain JPEG's markers say it all; libvips reads every other header
        _check_size(plain.width, plain.height, max_pixels, max_side)
        _check_cost(cost(fmt, plain.width, plain.height, plain.components, 1, plain.progressive), max_decode_bytes)
        return SourceInfo(fmt, plain.width, plain.height, plain.orientation, needs_profile=False)
    try:
        header = pyvips.Image.new_from_source(_memory(data), "", access="sequential")
    except pyvips.Error as exc:
        if fmt == formats.HEIC:
            raise UnsupportedType("HEIC cannot be decoded by the installed libvips") from exc
        raise Undecodable(f"the {fmt} header cannot be read: {_first_line(exc)}") from exc
    width, height = header.width, header.height
    _check_size(width, height, max_pixels, max_side)
    if fmt == formats.TIFF:
        _check_tiff_tiles(header, width, height)
    profile = bool(header.get_typeof("icc-profile-data"))
    _check_cost(decode_cost(data, fmt, header, width, height, profile), max_decode_bytes)
    # After the limits: libheif decodes the whole image even for this one pixel (a 2 KB AV1 file
    # branded heic, 10000x10000, was 2.0 s and +1,451 MB here before its 413 for the pixel cap).
    if fmt == formats.HEIC and not _decodes(header):
        raise UnsupportedType("HEIC cannot be decoded by the installed libvips")
    orientation = header.get("orientation") if header.get_typeof("orientation") else 1
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1  # an invalid tag means "as stored"
    needs_profile = profile or header.interpretation == "cmyk"
    return SourceInfo(fmt, width, height, orientation, needs_profile)


def _check_size(width: int, height: int, max_pixels: int, max_side: int = DEFAULT_MAX_SOURCE_SIDE) -> None:
    """The pixel count, then each side: render CPU follows rows (a 97 KB 1 x 50,000,000 grey PNG
    was 6.35 s) and a streamed decode's buffers follow the width (a 48.7 KB 50,000,000 x 1 PNG
    took a worker from 122 to 599 MB), both within the pixel, byte and decode caps."""
    if width * height > max_pixels:
        raise TooManyPixels(f"{width}x{height} is over the {max_pixels} pixel limit")
    if max(width, height) > max_side:
        raise TooManyPixels(f"{width}x{height} has a side over the {max_side} pixel limit")


def _check_scans(data: Body) -> None:
    """libjpeg decodes every scan over the whole frame and nothing bounds how many there are: a
    progressive file of a few bytes per scan keeps a render thread busy for minutes per MB."""
    scans = jpeg_header.scan_count(data)
    if scans is not None and scans > jpeg_header.MAX_SCANS:
        raise TooLarge(f"the JPEG has {scans} scans, over the limit of {jpeg_header.MAX_SCANS}")


def _check_tiff_pages(data: Body) -> None:
    """libtiff walks every page on each header read: 200,000 one-pixel pages were 5.9 s of CPU."""
    pages = tiff_header.page_count(data)
    if pages is not None and pages > tiff_header.MAX_PAGES:
        raise TooLarge(f"the TIFF has more than {tiff_header.MAX_PAGES} pages; only the first would be shown")


def _check_tiff_tiles(header: pyvips.Image, width: int, height: int) -> None:
    if not header.get_typeof("tile-width") or not header.get_typeof("tile-height"):
        return  # in strips
    tile_width, tile_height = max(1, header.get("tile-width")), max(1, header.get("tile-height"))
    tiles = -(-width // tile_width) * -(-height // tile_height)
    if tiles > MAX_TIFF_TILES:
        raise TooLarge(
            f"the TIFF has {tiles} tiles of {tile_width}x{tile_height}, over the limit of {MAX_TIFF_TILES}"
        )


def _check_png_chunks(data: Body) -> None:
    """libvips inflates every compressed text chunk ahead of the pixels and keeps it: 1,000 zTXt
    chunks of 10 MB each (a 10 MB file) were 11.8 s of CPU and 2,970 MB for a 64 x 64 image."""
    refusal = png_header.check(data)
    if refusal is not None:
        raise TooLarge(f"the PNG has {refusal.reason}")


def _check_jpeg_profile(data: Body) -> None:
    """libjpeg keeps every APP2 segment and libvips copies the profile out of them (see
    :data:`proxy.jpeg_header.MAX_PROFILE`); the same 8 MB limit as a PNG's profile."""
    if jpeg_header.profile_size(data) > jpeg_header.MAX_PROFILE:
        raise TooLarge(f"the JPEG has an ICC profile of more than {jpeg_header.MAX_PROFILE // (1024 * 1024)} MB")


def _check_tiff_scans(data: Body) -> None:
    """The same bomb inside a TIFF's JPEG-compressed strips, where each extra scan costs more."""
    counted = jpeg_header.tiff_scans(data)
    if counted is not None:
        scans, frames = counted
        raise TooLarge(
            f"the TIFF's JPEG data has {scans} scans for {frames} frames, over the limit of "
            f"{jpeg_header.MAX_SCANS_PER_TIFF_FRAME} per frame"
        )


def _check_cost(need: DecodeCost, max_decode_bytes: int) -> None:
    if need.bytes > max_decode_bytes:
        raise TooLarge(
            f"decoding this {need.description} needs {megabytes(need.bytes)} of memory"
            f"{'' if need.streamed else ' (it cannot be decoded as a stream)'}, "
            f"over the {megabytes(max_decode_bytes)} decode budget"
        )


def decode_reduced(
    data: Body, variant: Variant, info: SourceInfo, max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES
) -> pyvips.Image:
    """Shrink on load into the variant's box, first frame or page only, never upscaling.

    Orientation is left to :func:`orient`; embedded or implied (CMYK) profiles are turned
    into sRGB here because libvips does that best on the reduced image. A plain JPEG is
    decoded by libjpeg-turbo (:mod:`proxy.jpeg_turbo`) at the scale libvips would use.
    """
    options: dict[str, str] = {"export_profile": "srgb"} if info.needs_profile else {}
    if variant.crop:
        # Cover the square and crop the centre. Orientation comes later, and a centred square
        # is the same region whichever way the photo turns.
        options["crop"] = "centre"
    decoded = _plain_jpeg(data, variant, info, max_decode_bytes)
    if decoded is not None:
        return decoded.thumbnail_image(
            variant.max_side, height=variant.max_side, size="down", no_rotate=True, **options
        )
    return pyvips.Image.thumbnail_source(
        _memory(data),
        variant.max_side,
        height=variant.max_side,
        size="down",
        no_rotate=True,
        # The loader's own option: thumbnail's ``fail_on`` does not reach the JPEG loader.
        option_string="fail_on=truncated",
        **options,
    )


def _plain_jpeg(data: Body, variant: Variant, info: SourceInfo, max_decode_bytes: int) -> pyvips.Image | None:
    """A profile-less JPEG decoded by libjpeg-turbo at the scale libvips would load it at, or None."""
    if info.format != formats.JPEG or info.needs_profile:
        return None
    scale = jpeg_turbo.thumbnail_shrink(info.width, info.height, variant.max_side, variant.crop)
    if jpeg_turbo.decoded_bytes(info.width, info.height, scale) > max_decode_bytes:
        return None  # libvips streams it in rows instead
    return jpeg_turbo.decode(data, scale, info.width, info.height)


def orient(image: pyvips.Image, orientation: int) -> pyvips.Image:
    """Apply an EXIF orientation (1-8) so the thumbnail shows the photo the right way up."""
    if orientation in (2, 4, 5, 7):
        image = image.fliphor()
    # After the mirror, each value is a plain rotation: 2->1, 4->3, 5->6... (EXIF 2.32, 4.6.4).
    rotation = {1: None, 2: None, 3: "d180", 4: "d180", 5: "d270", 6: "d90", 7: "d90", 8: "d270"}
    angle = rotation[orientation]
    return image.rot(angle) if angle else image


def colour(image: pyvips.Image) -> pyvips.Image:
    """8-bit sRGB whatever came in (grey, 16-bit, profile-less CMYK or Lab)."""
    # Each property read is several libvips calls, each a GIL hand-off: the common case (8-bit
    # sRGB) reads two and converts nothing; a conversion may leave floats, hence the cast.
    if image.format == "uchar" and image.interpretation == "srgb":
        return image
    return image.colourspace("srgb").cast("uchar")


def flatten(image: pyvips.Image) -> pyvips.Image:
    """Transparency becomes white; JPEG has no alpha. Takes :func:`colour`'s 8-bit sRGB."""
    if image.hasalpha():
        # flatten computes in float: back to 8 bits.
        image = image.flatten(background=list(WHITE)).cast("uchar")
    return image.extract_band(0, n=3) if image.bands > 3 else image


def resize(image: pyvips.Image, max_side: int, *, square: bool = False) -> pyvips.Image:
    """Guard the box: the longest side at most ``max_side``, no side under 1 px; a square
    variant of a source smaller than its box is cropped square at the source's short side."""
    if square and image.width != image.height:
        side = min(image.width, image.height)
        image = image.crop((image.width - side) // 2, (image.height - side) // 2, side, side)
    longest = max(image.width, image.height)
    # libvips' resize rounds each side and never below 1 px (test_extreme_aspect_keeps_at_least_one_pixel).
    return image.resize(max_side / longest) if longest > max_side else image


@dataclass(frozen=True)
class Pixels:
    """The finished thumbnail as 8-bit RGB, row after row: what the encoder and the colour read."""

    data: bytes
    width: int
    height: int


def materialise(image: pyvips.Image) -> Pixels:
    """Compute the thumbnail's pixels once (one libvips sink); the encoder and the
    placeholder colour both read these bytes."""
    if image.bands == 1:  # colour() leaves an sRGB-tagged single band as it is
        image = image.bandjoin([image, image])
    return Pixels(image.write_to_memory(), image.width, image.height)


def encode(pixels: Pixels, variant: Variant) -> bytes:
    """A fresh baseline JPEG with no metadata, optimised Huffman tables and 4:2:0 chroma.

    Encoded by the libjpeg-turbo in Pillow's wheels, on this thread: the same bytes as libvips'
    ``jpegsave`` with these settings (its mozjpeg runs with the libjpeg-turbo defaults unless
    trellis or the like is asked for; ``tests/proxy/test_pipeline.py`` compares the two), without
    the sink's worker and write-behind threads (about 25 thread switches per thumbnail, a
    tenth of a small JPEG's CPU; bench/NOTES.md, "Fourth pass").

    Measured over the bench corpus (bench/NOTES.md, "JPEG encoder and resize options"):
    mozjpeg's trellis quantisation saves ~8 % bytes at Q65 but costs ~0.011 SSIM on photos,
    and at equal SSIM (trellis at Q70) it saves nothing while tripling the encode time, so
    it is off. Quant tables 2-5 are no better at equal SSIM; progressive and 4:4:4 cost bytes.
    """
    frame = Image.frombuffer("RGB", (pixels.width, pixels.height), pixels.data, "raw", "RGB", 0, 1)
    for quality in (variant.quality, *FALLBACK_QUALITIES):
        out = io.BytesIO()
        frame.save(out, "JPEG", quality=quality, optimize=True, subsampling=2)
        data = _without_jfif(out.getvalue())
        if len(data) <= variant.max_bytes:
            break
    return data


def _without_jfif(jpeg: bytes) -> bytes:
    """Drop the JFIF APP0 segment Pillow always writes (18 bytes of density that viewers
    ignore; libvips writes none): the rest is the whole image."""
    if jpeg[2:4] == b"\xff\xe0" and jpeg[4:6] == b"\x00\x10" and jpeg[6:11] == b"JFIF\x00":
        return jpeg[:2] + jpeg[20:]
    return jpeg


def average_colour(pixels: bytes) -> str:
    """The mean of each band of the finished 8-bit RGB thumbnail's pixels, as ``#rrggbb``.

    Summed by numpy (exact integer sums, so the same means as libvips' ``stats``): a third
    of the CPU of a ``stats`` pass, which is one more libvips evaluation.
    """
    values = np.frombuffer(pixels, dtype=np.uint8)
    count = values.size // 3
    red, green, blue = (round(int(values[band::3].sum(dtype=np.uint64)) / count) for band in range(3))
    return f"#{red:02x}{green:02x}{blue:02x}"


def _memory(data: Body) -> pyvips.Source:
    """The body as a libvips source over the same memory: ``thumbnail_buffer`` would copy
    it into a blob first, one more copy of every source for each render in flight."""
    return pyvips.Source.new_from_memory(data)


def _decodes(header: pyvips.Image) -> bool:
    try:
        header.crop(0, 0, 1, 1).copy_memory()
    except pyvips.Error:
        return False
    return True


def _first_line(exc: pyvips.Error) -> str:
    text = str(exc.detail or exc.message).strip()
    return text.splitlines()[0] if text else "libvips error"
