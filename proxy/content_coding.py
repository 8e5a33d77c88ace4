"""Content-Encoding undone under the byte cap, a bounded piece at a time.

httpx inflates every coding an origin declares, whole, before a caller sees one chunk: a
1.8 KB body declared ``gzip, gzip`` became gigabytes in one call. The fetcher reads the raw
stream instead and passes it through :class:`CappedDecoder`:

- ``identity`` (or none) passes through; ``gzip``/``x-gzip`` and ``deflate`` are inflated
  with ``zlib`` ``max_length``, so the output never goes past the cap, however small the
  input, and in pieces of at most :data:`PIECE` bytes (the fetcher yields to the event loop
  between pieces, so one bomb cannot freeze the worker);
- more than one coding (``gzip, gzip``, ``deflate, gzip``) is refused, as is any coding
  this module does not know (``br``, ``zstd``, ``compress``, junk): we ask origins for
  ``identity`` only, so anything else is the origin misbehaving.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from proxy.errors import OriginError, TooLarge

IDENTITY = "identity"
GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
DEFLATE = "deflate"
# Largest piece inflated in one call: ~1-2 ms of zlib work, so the loop stays responsive.
PIECE = 1 << 20


class StackedEncoding(OriginError):
    code = "stacked_encoding"


class UnsupportedEncoding(OriginError):
    code = "unsupported_encoding"


def codings_of(header: str) -> list[str]:
    """The codings named by a Content-Encoding header, ``identity`` dropped."""
    return [part.strip().lower() for part in header.split(",") if part.strip() and part.strip().lower() != IDENTITY]


def check_transfer_coding(transfer_encoding: str) -> None:
    """Refuse a transfer coding other than ``chunked`` (``gzip, chunked``, ``gzip`` alone, two
    headers): the parser undoes only chunked and hands the rest over as body bytes, so a
    gzip-transferred image was sniffed as "not an image", a 415 blaming the source."""
    others = [coding for coding in codings_of(transfer_encoding) if coding != "chunked"]
    if others:
        raise UnsupportedEncoding(f"the transfer encoding {others[0][:40]!r} is not supported")


class CappedDecoder:
    """Turns raw body chunks into the bytes the pipeline sees; :class:`TooLarge` past ``cap``."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        codings = codings_of(content_encoding)
        if len(codings) > 1:
            raise StackedEncoding(f"stacked content encodings are refused ({', '.join(codings)})")
        self.coding = codings[0] if codings else IDENTITY
        if self.coding not in GZIP_CODINGS and self.coding not in (DEFLATE, IDENTITY):
            raise UnsupportedEncoding(f"the content encoding {self.coding[:40]!r} is not supported")
        self.cap = cap
        self.produced = 0  # bytes handed to the pipeline (after decoding)
        self._inflater = self._new_inflater() if self.coding != IDENTITY else None
        self._first = True
        self._fed = False
        self._after_end = b""
        self._padding = False

    def _new_inflater(self) -> zlib._Decompress:
        if self.coding in GZIP_CODINGS:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj()  # deflate as RFC 9110 means it: zlib-wrapped

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """The decoded pieces of one raw chunk, each at most :data:`PIECE` bytes."""
        if not chunk:
            return
        self._fed = True
        if self._inflater is None:
            yield self._count(chunk)
            return
        data = chunk
        while True:
            if self._inflater.eof:
                # Concatenated gzip members are one gzip body (RFC 1952); whatever else
                # follows the end of the stream is padding we ignore, as browsers do.
                data = self._after_end + data
                self._after_end = b""
                if self._padding or not data or self.coding not in GZIP_CODINGS:
                    return
                if len(data) < 2:
                    self._after_end = data  # too short to tell a new member from padding yet
                    return
                if not data.startswith(b"\x1f\x8b"):
                    self._padding = True
                    return
                self._inflater = self._new_inflater()
            limit = min(PIECE, self.cap - self.produced + 1)
            try:
                piece = self._inflater.decompress(data, limit)
            except zlib.error as exc:
                if self._first and self.coding == DEFLATE:
                    # Some servers send raw deflate without the zlib wrapper (httpx allows it).
                    self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._first = False
                    continue
                raise OriginError(f"the origin's {self.coding} body is corrupt") from exc
            self._first = False
            data = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail
            if piece:
                yield self._count(piece)
            # A full piece may leave output pending inside zlib even with no input left.
            if not data and len(piece) < limit:
                return

    def finish(self) -> None:
        """At the end of the raw stream: a compressed body that started must be complete."""
        if self._inflater is not None and self._fed and not self._inflater.eof:
            raise OriginError(f"the origin's {self.coding} body is truncated")

    def _count(self, piece: bytes) -> bytes:
        self.produced += len(piece)
        if self.produced > self.cap:
            raise TooLarge(f"the source is over the {self.cap} byte limit (after decoding {self.coding})")
        return piece
