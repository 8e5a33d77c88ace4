"""Small generated test images (pyvips), including hostile ones: pixel bombs, bad ICC, etc.

Everything is made in memory in milliseconds; nothing is downloaded.
"""

from __future__ import annotations

import os
import struct
import zlib

import pyvips

RED = (220, 20, 30)
GREEN = (20, 200, 40)
BLUE = (30, 40, 220)


def solid(width: int, height: int, colour: tuple[int, ...] = RED) -> pyvips.Image:
    image = pyvips.Image.black(width, height, bands=len(colour)) + list(colour)
    interpretation = "srgb" if len(colour) >= 3 else "b-w"
    return image.cast("uchar").copy(interpretation=interpretation)


def photo(width: int = 640, height: int = 480) -> pyvips.Image:
    """Something with gradients and texture, so encoders have real work."""
    xyz = pyvips.Image.xyz(width, height)
    red = (xyz[0] * 255 / max(width - 1, 1)).cast("uchar")
    green = (xyz[1] * 255 / max(height - 1, 1)).cast("uchar")
    blue = ((xyz[0] + xyz[1]) % 64 * 4).cast("uchar")
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0)
    return (red.bandjoin([green, blue]) + noise).cast("uchar").copy(interpretation="srgb")


def quadrants(width: int = 80, height: int = 40) -> pyvips.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right: shows orientation."""
    half_w, half_h = width // 2, height // 2
    top = solid(half_w, half_h, RED).join(solid(width - half_w, half_h, GREEN), "horizontal")
    bottom = solid(half_w, height - half_h, BLUE).join(solid(width - half_w, height - half_h, (255, 255, 255)),
                                                        "horizontal")
    return top.join(bottom, "vertical")


def jpeg(image: pyvips.Image, **options: object) -> bytes:
    return image.jpegsave_buffer(Q=90, **options)


def png(image: pyvips.Image) -> bytes:
    return image.pngsave_buffer()


def with_orientation(image: pyvips.Image, orientation: int) -> bytes:
    """A JPEG whose EXIF says ``orientation``; the pixels are stored so that applying it
    shows ``image`` upright."""
    inverse = {1: image, 2: image.fliphor(), 3: image.rot180(), 4: image.flipver(),
               5: image.rot90().fliphor(), 6: image.rot270(), 7: image.rot270().fliphor(), 8: image.rot90()}
    stored = inverse.get(orientation, image).copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return stored.jpegsave_buffer(Q=95)


def animated(frames: list[tuple[int, int, int]], size: int = 32, fmt: str = "gif") -> bytes:
    stack = solid(size, size, frames[0])
    for colour in frames[1:]:
        stack = stack.join(solid(size, size, colour), "vertical")
    stack = stack.copy()
    stack.set_type(pyvips.GValue.gint_type, "page-height", size)
    stack.set_type(pyvips.GValue.array_int_type, "delay", [100] * len(frames))
    stack.set_type(pyvips.GValue.gint_type, "loop", 0)
    if fmt == "gif":
        return stack.gifsave_buffer()
    if fmt == "webp":
        return stack.webpsave_buffer(lossless=True)
    if fmt == "tiff":
        return stack.tiffsave_buffer()
    raise ValueError(fmt)


def with_icc(image: pyvips.Image, profile: bytes) -> pyvips.Image:
    tagged = image.copy()
    tagged.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    return tagged


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def adobe_rgb_profile() -> bytes:
    """A minimal ICC v2 matrix/TRC profile with Adobe RGB (1998) primaries, D50-adapted."""
    desc_text = b"Adobe RGB (1998) test\0"
    desc = (b"desc\0\0\0\0" + struct.pack(">I", len(desc_text)) + desc_text
            + b"\0" * 8 + b"\0\0\0" + b"\0" * 67)
    curve = b"curv\0\0\0\0" + struct.pack(">I", 1) + struct.pack(">H", 563) + b"\0\0"  # gamma 2.2
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz_tag(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz_tag(0.6097, 0.3111, 0.0195)),
        (b"gXYZ", _xyz_tag(0.2053, 0.6257, 0.0609)),
        (b"bXYZ", _xyz_tag(0.1492, 0.0632, 0.7446)),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0public domain test profile\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        padded = body + b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += padded
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


# --- hostile inputs -----------------------------------------------------------------------

def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny valid-looking PNG whose header declares ``width`` x ``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_bomb(width: int = 65_000, height: int = 65_000) -> bytes:
    """A small JPEG with its frame header (SOF) patched to claim a huge size."""
    data = bytearray(jpeg(solid(16, 16)))
    index = 2
    while index < len(data):
        marker = data[index + 1]
        length = struct.unpack(">H", data[index + 2 : index + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[index + 5 : index + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        index += 2 + length
    raise AssertionError("no SOF marker")


def gif_bomb(width: int = 65_535, height: int = 65_535) -> bytes:
    """A GIF whose screen and image descriptors claim 65535 x 65535 pixels."""
    header = b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00"
    return header + descriptor + b"\x02\x02\x44\x01\x00" + b"\x3b"


def webp_bomb(width: int = 12_000, height: int = 12_000) -> bytes:
    """A lossless WebP whose headers (VP8X and VP8L) claim 12000 x 12000 pixels."""
    data = bytearray(solid(16, 16).webpsave_buffer(lossless=True))
    start = data.index(b"VP8L") + 8
    assert data[start] == 0x2F
    bits = int.from_bytes(data[start + 1 : start + 5], "little")
    bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
    data[start + 1 : start + 5] = bits.to_bytes(4, "little")
    if data[12:16] == b"VP8X":  # the extended header repeats the canvas size (24-bit fields)
        data[24:27] = (width - 1).to_bytes(3, "little")
        data[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(data)


def jpeg_scan_bomb(side: int = 256, scans: int = 300) -> bytes:
    """A grey progressive JPEG of ``side`` x ``side`` whose AC scan is repeated ``scans`` times;
    each scan is one EOB-run symbol per 32,767 blocks, so a few bytes cost a pass over the frame."""

    def segment(marker: int, payload: bytes) -> bytes:
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    def entropy(bits: str) -> bytes:
        bits += "1" * (-len(bits) % 8)  # pad with ones, as encoders do
        out = bytearray()
        for start in range(0, len(bits), 8):
            out.append(int(bits[start:start + 8], 2))
            if out[-1] == 0xFF:
                out.append(0)  # byte stuffing
        return bytes(out)

    blocks = (side // 8) ** 2
    head = (b"\xff\xd8" + segment(0xDB, b"\x00" + b"\x01" * 64)
            + segment(0xC2, struct.pack(">BHHB", 8, side, side, 1) + b"\x01\x11\x00")
            + segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # DC: category 0 is "0"
            + segment(0xC4, b"\x10" + bytes([1, 1] + [0] * 14) + b"\xe0\x10"))  # AC: EOB14 "0", EOB1 "10"
    dc = segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + entropy("0" * blocks)
    runs, left = "", blocks
    while left >= 16384:
        run = min(left, 32767)
        runs, left = runs + "0" + format(run - 16384, "014b"), left - run
    while left > 0:
        runs, left = runs + "10" + "1", left - 3  # EOB1 with its extra bit: a run of 3
    ac = segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + entropy(runs)
    return head + dc + ac * scans + b"\xff\xd9"


def tiff_with_jpeg_strip(jpeg: bytes, side: int) -> bytes:
    """A grey ``side`` x ``side`` TIFF whose one strip is ``jpeg`` (compression 7)."""
    entries = [(256, 4, side), (257, 4, side), (258, 3, 8), (259, 3, 7), (262, 3, 1), (273, 4, 0),
               (277, 3, 1), (278, 4, side), (279, 4, len(jpeg))]
    start = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = start if tag == 273 else value
        field = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + field
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + jpeg


def random_bytes(size: int = 4096) -> bytes:
    return os.urandom(size)


HTML = b"<!doctype html><html><body><img src='x.jpg'></body></html>"

# An SVG that would fetch a URL and read a file if rendered; the proxy must do neither.
SVG_WITH_REFERENCES = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100">
  <style>@import url(ORIGIN/svg-css);</style>
  <image xlink:href="ORIGIN/svg-href.png" width="100" height="100"/>
  <text>&secret;</text>
</svg>"""

# ISO-BMFF with a HEIC brand and nothing decodable behind it.
FAKE_HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64


def tiff_page_bomb(pages: int) -> bytes:
    """A little-endian TIFF of ``pages`` one-pixel grey pages sharing one strip byte: about 100
    bytes a page, each of which libtiff walks and checks on every header read."""
    entries = 8
    ifd_size = 2 + entries * 12 + 4
    pixel_at = 8 + pages * ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for index in range(pages):
        next_at = 8 + (index + 1) * ifd_size if index + 1 < pages else 0
        # width, height, bits, no compression, black is zero, the strip, rows per strip, its size
        tags = ((256, 3, 1), (257, 3, 1), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, pixel_at),
                (278, 3, 1), (279, 4, 1))
        out += struct.pack("<H", entries)
        for tag, kind, value in tags:
            out += struct.pack("<HHII", tag, kind, 1, value)
        out += struct.pack("<I", next_at)
    out += b"\x80"
    return bytes(out)
