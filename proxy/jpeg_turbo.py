"""JPEG shrink-on-load through libjpeg-turbo (simplejpeg) instead of libvips' bundled decoder.

Why: the libvips that pyvips-binary ships decodes JPEG with mozjpeg, and on the sources the
Playground stores most (1024 px AI outputs) decoding is most of a thumbnail's CPU. The
libjpeg-turbo in simplejpeg's wheels decodes the same file at the same scale faster, straight
into a buffer libvips then reads without a copy (``bench/NOTES.md``, "JPEG decoder"). Both are
libjpeg's integer IDCT and upsampling, so at the scale libvips' ``thumbnail`` would pick the
pixels are the same and the thumbnail's bytes are identical (``tests/proxy/test_jpeg_turbo.py``).

Only plain JPEGs come here: 8-bit YCbCr, RGB or greyscale without an embedded profile
(profiles and CMYK need libvips' colour management). Anything this decoder refuses or warns
about (a truncated or slightly corrupt file: libjpeg's recoverable errors are errors here)
returns None and the caller decodes with libvips as before, so a file libvips reads is never
refused because of this path, and truncation stays libvips' ``fail_on=truncated`` error.
"""

from __future__ import annotations

import pyvips
import simplejpeg

from proxy.sniff import Body

# The header's colour space -> what to decode to, the bands, libvips' interpretation.
_OUTPUT = {"YCbCr": ("RGB", 3, "srgb"), "RGB": ("RGB", 3, "srgb"), "Gray": ("GRAY", 1, "b-w")}


def thumbnail_shrink(width: int, height: int, box: int, crop: bool) -> int:
    """The scale libvips' ``thumbnail`` loads a JPEG at: leave at least a factor of two to the
    resize (libvips' ``vips_thumbnail_find_jpegshrink``), which keeps the output identical."""
    shrink = (min if crop else max)(width / box, height / box)
    return 8 if shrink >= 16 else 4 if shrink >= 8 else 2 if shrink >= 4 else 1


def scaled(width: int, height: int, scale: int) -> tuple[int, int]:
    """The size libjpeg decodes to at ``1/scale`` (it rounds up)."""
    return -(-width // scale), -(-height // scale)


def decoded_bytes(width: int, height: int, scale: int) -> int:
    """The most this path holds for one source: the decoded RGB buffer."""
    scaled_width, scaled_height = scaled(width, height, scale)
    return scaled_width * scaled_height * 3


def decode(data: Body, scale: int, width: int, height: int) -> pyvips.Image | None:
    """The JPEG decoded at ``1/scale`` as an in-memory libvips image, or None to let libvips
    decode it (a colour space this path does not take, or anything libjpeg-turbo objects to).

    The image reads its pixel buffer in place, and libvips operations on it carry the buffer's
    reference to their results; ``copy_memory()`` on this image itself would not (libvips returns
    the same image, pyvips a wrapper without the reference), so hand it to operations only."""
    try:
        header_height, header_width, colour_space, _ = simplejpeg.decode_jpeg_header(data)
    except Exception:  # whatever it objects to, libvips decides (and reports) instead
        return None
    output = _OUTPUT.get(colour_space)
    if output is None or (header_width, header_height) != (width, height) or min(width, height) < scale:
        return None
    mode, bands, _ = output
    out_width, out_height = scaled(width, height, scale)
    pixels = bytearray(out_width * out_height * bands)
    try:
        # The smallest of libjpeg's M/8 scales that covers this size is exactly 1/scale.
        decoded = simplejpeg.decode_jpeg(
            data, mode, min_width=out_width, min_height=out_height, buffer=pixels, strict=True
        )
    except Exception:  # as above: never this path's error, always libvips' verdict
        return None
    if decoded.shape[:2] != (out_height, out_width):
        return None  # not the scale libvips would load at: its output would differ
    # libvips tags 8-bit memory images by their bands: 3 as srgb, 1 as b-w (what _OUTPUT says),
    # so no copy() to set it (test_decoded_images_carry_their_interpretation).
    image = pyvips.Image.new_from_memory(pixels, out_width, out_height, bands, "uchar")
    # libvips' loader keeps only whole scaled pixels: a last column or row that libjpeg made
    # from a partial block is dropped there, so it is dropped here too.
    whole_width, whole_height = width // scale, height // scale
    if (whole_width, whole_height) != (out_width, out_height):
        image = image.crop(0, 0, whole_width, whole_height)
    return image
