"""What :func:`proxy.pipeline.check_limits` needs of a plain JPEG, read from its markers, not by libvips.

Why: reading a header through libvips is ~70 libvips calls (a quarter of a small JPEG's render
calls, each one a GIL release the event loop may take) and ~0.3 ms; walking the markers up to
the first scan is a few dozen byte reads. Only the common, unambiguous case is answered here:
an 8-bit baseline or progressive Huffman JPEG with one or three components, no ICC profile
and at most one Exif segment whose first IFD holds the orientation (or no Exif at all).
Anything else (CMYK, a profile, arithmetic or lossless coding, a second frame, an Exif layout
libexif might read elsewhere, a truncated or malformed segment) returns None and libvips reads
the header as before, so this path never decides an edge case differently from libvips.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from proxy.sniff import Body

# Start-of-frame markers this path takes: baseline, extended sequential, progressive (Huffman).
_FRAMES = {0xC0: False, 0xC1: False, 0xC2: True}
# Every other SOFn: lossless, hierarchical, arithmetic coding (and DHT/JPG/DAC share the range).
_OTHER_FRAMES = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_SOS, _EOI, _APP1, _APP2 = 0xDA, 0xD9, 0xE1, 0xE2
_ORIENTATION, _SHORT = 0x0112, 3
# Real encoders write a dozen segments and rarely a fill byte; Python walks them, so cap both.
MAX_SEGMENTS, MAX_FILL_BYTES = 256, 64
# An ICC profile split over APP2 "ICC_PROFILE" segments (at most 65,519 bytes each), as for a
# PNG's (:data:`proxy.png_header.MAX_PROFILE`): a screen's or camera's is kilobytes. libjpeg keeps
# every APP2 segment libvips asks it to save, and libvips copies the first 100 into the profile:
# a 64 x 64 JPEG with a 16 MB profile took 0.22 s of CPU and +52 MB (24 MB: 0.31 s, +68 MB).
MAX_PROFILE = 8 * 1024 * 1024
_ICC = b"ICC_PROFILE\x00"
# Over 8 MB takes at least 129 segments: the profile walk may go further than :func:`read`'s.
MAX_PROFILE_SEGMENTS = 4096


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    components: int  # 1 (grey) or 3 (YCbCr or RGB)
    progressive: bool
    orientation: int  # 1-8, 1 when absent or invalid (as stored)


def read(data: Body) -> JpegHeader | None:
    """The header of a plain JPEG, or None to let libvips read it."""
    if bytes(data[:2]) != b"\xff\xd8":
        return None
    frame: tuple[bool, Body] | None = None
    exif: list[Body] = []
    reached_scan = False
    for marker, body in _segments(data):
        if marker == _SOS:
            reached_scan = True
            break
        if marker in _FRAMES:
            if frame is not None:
                return None
            frame = (_FRAMES[marker], body)
        elif marker in _OTHER_FRAMES:
            return None
        elif marker == _APP2 and bytes(body[:12]) == b"ICC_PROFILE\x00":
            return None  # a profile: libvips manages colour (and decodes it)
        elif marker == _APP1 and bytes(body[:6]) == b"Exif\x00\x00":
            exif.append(body[6:])
    if not reached_scan:
        return None  # the walk gave up before the first scan: a strange file
    if frame is None or len(exif) > 1:
        return None
    progressive, sof = frame
    if len(sof) < 6:
        return None
    precision, components = sof[0], sof[5]
    height, width = int.from_bytes(sof[1:3], "big"), int.from_bytes(sof[3:5], "big")
    if precision != 8 or components not in (1, 3) or width == 0 or height == 0:
        return None  # 12-bit, CMYK/YCCK, or a height left to a DNL marker
    orientation = _orientation(exif[0]) if exif else 1
    if orientation is None:
        return None
    return JpegHeader(width, height, components, progressive, orientation)


def profile_size(data: Body, limit: int = MAX_PROFILE) -> int:
    """The bytes of ICC profile the APP2 segments ahead of the first scan carry (what libvips
    assembles them from: each segment's body after its 14-byte header), counted until past
    ``limit``; what the walk reaches when it gives up early (libvips then reads the rest)."""
    total = 0
    for marker, body in _segments(data, MAX_PROFILE_SEGMENTS):
        if marker == _APP2 and len(body) > 14 and bytes(body[:12]) == _ICC:
            total += len(body) - 14
            if total > limit:
                break
    return total


# Frames whose scans can be nearly free to encode and costly to decode: progressive (one
# "EOB run" symbol skips 32,767 blocks) and arithmetic coding. Baseline Huffman frames take
# at least a bit per block per scan, and libjpeg refuses a second scan of a one-scan file.
_SEQUENTIAL_HUFFMAN = {0xC0, 0xC1}
# Past this many scans a JPEG is refused before decoding: libjpeg-turbo's own guidance for
# decoders of untrusted files (djpeg -maxscans, TurboJPEG's scan limit; nvImageCodec's default
# is 256). Real progressive files have about 10 (libjpeg's script) to a few dozen; 24 MB of
# 73-byte scans over a 48 MP frame held a render thread for about half an hour.
MAX_SCANS = 256


def scan_count(data: Body) -> int | None:
    """How many scans (SOS markers) the file holds, for frames whose scans can be cheap to send
    (progressive, arithmetic, or a frame this walk cannot find); None for baseline Huffman.

    The marker bytes FF DA cannot occur inside entropy-coded data (an FF there is stuffed with
    00), so counting them is exact for the scans and over-counts only a metadata segment or
    an appended image (an MPF second frame) that contains them: refusing those is harmless."""
    frame = _frame_marker(data)
    if frame in _SEQUENTIAL_HUFFMAN:
        return None
    return data.count(b"\xff\xda")


# A TIFF's JPEG-compressed strips and tiles hold one frame each, with one scan for libtiff's
# baseline streams; libvips' TIFF reader is far slower per extra scan than its JPEG reader
# (a 2048x2048 strip of 200 near-empty scans: 131 s in a TIFF, 0.1 s as a JPEG; 50 scans:
# 0.05 s), so a TIFF may carry only a few scans per frame.
MAX_SCANS_PER_TIFF_FRAME = 16
# Start-of-frame markers that can carry many cheap scans (progressive, arithmetic) or none.
_TIFF_FRAME_MARKERS = (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2", b"\xff\xc9", b"\xff\xca")


def tiff_scans(data: Body) -> tuple[int, int] | None:
    """(scans, frames) of the JPEG streams inside a TIFF when the scans exceed what its frames
    allow, else None. Counted over the whole file: in other compressions these byte pairs are
    random and the frame markers outnumber the scan marker, so a non-JPEG TIFF always passes."""
    scans = data.count(b"\xff\xda")
    if scans <= MAX_SCANS_PER_TIFF_FRAME:
        return None  # the common case: one pass over the file
    frames = sum(data.count(marker) for marker in _TIFF_FRAME_MARKERS)
    return (scans, frames) if scans > MAX_SCANS_PER_TIFF_FRAME * max(frames, 1) else None


def _frame_marker(data: Body) -> int | None:
    """The first SOFn marker, walking segments as :func:`read` does (None when it gives up)."""
    for marker, _ in _segments(data):
        if marker in _FRAMES or marker in _OTHER_FRAMES:
            return marker
    return None


def _segments(data: Body, max_segments: int = MAX_SEGMENTS) -> Iterator[tuple[int, Body]]:
    """Each segment's marker and body up to and including the first scan's header; it ends
    early at anything a plain JPEG does not have there, and the caller then gives up."""
    position, size = 2, len(data)
    # A hostile file can be all fill bytes or tiny segments: past these, libvips' C reader decides.
    fills, segments = 0, 0
    while position + 4 <= size and data[position] == 0xFF:  # otherwise: ran out, or not a marker
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before the marker
            fills += 1
            if fills > MAX_FILL_BYTES:
                return
            position += 1
            continue
        segments += 1
        if segments > max_segments:
            return
        if marker == _EOI or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            return  # no lengths on these; before the first scan they mean a strange file
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if length < 2 or position + 2 + length > size:
            return
        yield marker, data[position + 4:position + 2 + length]
        if marker == _SOS:
            return
        position += 2 + length


def _orientation(tiff: Body) -> int | None:
    """The orientation tag of the first IFD (1 if invalid), or None when libexif could find one
    elsewhere (libvips takes the first IFD that has it) or the layout is not a plain TIFF one."""
    if len(tiff) < 8:
        return None
    byte_order = bytes(tiff[:2])
    if byte_order not in (b"II", b"MM"):
        return None
    order: Literal["little", "big"] = "little" if byte_order == b"II" else "big"

    def number(start: int, width: int) -> int:
        return int.from_bytes(tiff[start:start + width], order)

    if number(2, 2) != 42:
        return None
    ifd = number(4, 4)
    if ifd < 8 or ifd + 2 > len(tiff):
        return None
    entries = number(ifd, 2)
    if ifd + 2 + 12 * entries > len(tiff):
        return None
    for index in range(entries):
        entry = ifd + 2 + 12 * index
        if number(entry, 2) == _ORIENTATION:
            if number(entry + 2, 2) != _SHORT or number(entry + 4, 4) != 1:
                return None
            value = number(entry + 8, 2)
            return value if 1 <= value <= 8 else 1
    return None  # not in the first IFD: another IFD (thumbnail, Exif) may hold it
