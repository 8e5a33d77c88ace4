"""A finished thumbnail and its one serialised form, shared by the Redis and disk tiers.

Stored as ``THMB1\\n`` + a JSON line (source size, colour, ETag) + the JPEG bytes, so one
atomic write or one Redis value holds everything a response or a warm outcome needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import orjson

MAGIC = b"THMB1\n"


class CorruptEntry(ValueError):
    """Stored bytes that are not a thumbnail entry; treated as a miss."""


@dataclass(frozen=True)
class Thumbnail:
    data: bytes  # the JPEG
    width: int  # source size as displayed
    height: int
    color: str
    etag: str  # strong, quoted

    @cached_property  # built once per entry, reused by every hit on it
    def answer_headers(self) -> list[tuple[bytes, bytes]]:
        """The raw headers every 200 for this entry carries, tier aside."""
        return [
            (b"content-type", b"image/jpeg"),
            (b"content-length", str(len(self.data)).encode()),
            (b"cache-control", b"public, max-age=31536000, immutable"),
            (b"etag", self.etag.encode("latin-1")),
            (b"x-content-type-options", b"nosniff"),
        ]

    @classmethod
    def create(cls, data: bytes, width: int, height: int, color: str) -> Thumbnail:
        return cls(data, width, height, color, _etag(data))

    def pack(self) -> bytes:
        meta = orjson.dumps({"w": self.width, "h": self.height, "c": self.color, "e": self.etag})
        return MAGIC + meta + b"\n" + self.data

    @classmethod
    def unpack(cls, blob: bytes) -> Thumbnail:
        if not blob.startswith(MAGIC):
            raise CorruptEntry("missing header")
        meta_end = blob.find(b"\n", len(MAGIC))
        if meta_end < 0:
            raise CorruptEntry("missing metadata")
        try:
            meta = orjson.loads(blob[len(MAGIC) : meta_end])
            thumbnail = cls(blob[meta_end + 1 :], int(meta["w"]), int(meta["h"]), str(meta["c"]), str(meta["e"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CorruptEntry("bad metadata") from exc
        if not thumbnail.data.startswith(b"\xff\xd8"):
            raise CorruptEntry("not a JPEG")
        # A torn entry (tail lost in a crash, a partial copy or restore) must be a miss, never served.
        if not thumbnail.data.endswith(b"\xff\xd9"):
            raise CorruptEntry("truncated JPEG")
        # The ETag is the JPEG's digest: any byte changed in between (entries are written
        # without fsync; a power loss may garble one) is caught here, for ~10 us per 5 KB.
        if thumbnail.etag != _etag(thumbnail.data):
            raise CorruptEntry("the image does not match its digest")
        return thumbnail


def _etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()[:32]}"'
