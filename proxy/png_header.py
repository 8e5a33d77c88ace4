"""What a PNG carries before its image data, counted before libvips reads its header.

Why: libvips' PNG loader inflates every compressed text chunk (zTXt, and iTXt with its
compression flag) ahead of the first IDAT on each header read and keeps what it inflated as
metadata. A 10 MB PNG of 1,000 zTXt chunks, each 10 MB of text, took 11.8 s of render CPU and
grew the worker by 2,970 MB for a 64 x 64 thumbnail; 1.5 million tiny chunks cost 0.4 s. Real
PNGs carry a handful of text chunks (a comment, the software, XMP, an EXIF or IPTC hex dump),
so the walk here stops at the first IDAT or at a limit, and inflates at most the limit's bytes.
Chunks after the image data are not read for a thumbnail and are not counted. An embedded
ICC profile (iCCP) is inflated and copied the same way: a 41 KB PNG whose profile inflates to
40 MB took 0.32 s and +200 MB (libvips drops one between 40 and 60 MB); it may be 8 MB.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from proxy.sniff import Body

# Far above what encoders write ahead of the pixels (a dozen chunks, a few of them text).
MAX_CHUNKS = 1000
MAX_TEXT_CHUNKS = 64
# What compressed text may inflate to, all chunks together (EXIF or XMP dumps are well under).
MAX_INFLATED_TEXT = 8 * 1024 * 1024
# An ICC profile: a screen's or camera's is kilobytes, a large printer profile a few MB.
MAX_PROFILE = 8 * 1024 * 1024
_TEXT = {b"tEXt", b"zTXt", b"iTXt"}
# Where a text chunk's keyword and tags must end (a keyword is at most 79 bytes).
_HEAD = 4096
_STEP = 64 * 1024


@dataclass(frozen=True)
class Refusal:
    reason: str  # e.g. "more than 64 text chunks before its image data"


def check(data: Body) -> Refusal | None:
    """Why this PNG's chunks ahead of its image data are over a limit, or None (also for a
    layout this walk does not follow: libvips then reads it, and refuses it if it is broken)."""
    offset, chunks, texts, inflated = 8, 0, 0, 0
    view = memoryview(data)
    while offset + 8 <= len(data):
        length = int.from_bytes(view[offset : offset + 4], "big")
        kind = bytes(view[offset + 4 : offset + 8])
        if kind == b"IDAT" or kind == b"IEND":
            return None
        chunks += 1
        if chunks > MAX_CHUNKS:
            return Refusal(f"more than {MAX_CHUNKS} chunks before its image data")
        body = view[offset + 8 : offset + 8 + length]
        if kind == b"iCCP" and _inflated(kind, body, MAX_PROFILE + 1) > MAX_PROFILE:
            return Refusal(f"an ICC profile that inflates to more than {MAX_PROFILE // (1024 * 1024)} MB")
        if kind in _TEXT:
            texts += 1
            if texts > MAX_TEXT_CHUNKS:
                return Refusal(f"more than {MAX_TEXT_CHUNKS} text chunks before its image data")
            inflated += _inflated(kind, body, MAX_INFLATED_TEXT - inflated + 1)
            if inflated > MAX_INFLATED_TEXT:
                return Refusal(f"compressed text that inflates to more than {MAX_INFLATED_TEXT // (1024 * 1024)} MB")
        offset += 12 + length
    return None


def _inflated(kind: bytes, body: memoryview, limit: int) -> int:
    """How many bytes a compressed text or profile chunk inflates to, at most ``limit`` (0 for plain text)."""
    head = bytes(body[:_HEAD])  # keyword, flags and tags, never the whole (maybe 10 MB) text
    keyword_end = head.find(b"\0")
    if keyword_end < 0:
        return 0  # no keyword: libvips skips the chunk
    if kind in (b"zTXt", b"iCCP"):
        start = keyword_end + 2  # the keyword (profile name), its NUL, the method byte
    elif kind == b"iTXt" and head[keyword_end + 1 : keyword_end + 2] == b"\x01":
        # keyword NUL, flag, method, language tag NUL, translated keyword NUL, then the text
        language_end = head.find(b"\0", keyword_end + 3)
        translated_end = head.find(b"\0", language_end + 1) if language_end >= 0 else -1
        if translated_end < 0:
            return limit  # tags longer than any real one: counted as over
        start = translated_end + 1
    else:
        return 0
    # In steps of 64 KB in and out, so the count holds neither the limit nor a copy of the chunk.
    inflater, total = zlib.decompressobj(), 0
    try:
        for at in range(start, len(body), _STEP):
            pending: bytes | memoryview = body[at : at + _STEP]
            while pending and total < limit:
                total += len(inflater.decompress(pending, min(_STEP, limit - total)))
                pending = inflater.unconsumed_tail
            if total >= limit or inflater.eof:
                break
    except zlib.error:
        return 0  # broken text: libvips skips it
    return total
