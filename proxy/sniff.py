"""Tell an image's type from its first bytes; the origin's Content-Type is never trusted."""

from __future__ import annotations

# A source body as the fetcher hands it over: one buffer filled in place (see proxy.fetch).
Body = bytes | bytearray

JPEG, PNG, GIF, WEBP, TIFF, AVIF, HEIC, SVG = "jpeg", "png", "gif", "webp", "tiff", "avif", "heic", "svg"

# Formats the pipeline decodes. SVG is recognised only to refuse it by name.

_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def sniff(data: Body) -> str | None:
    """The format of ``data``, or None when it is not an image we know."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    # Classic TIFF, then BigTIFF (version 43: 64-bit offsets), which libvips' loader reads too.
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return TIFF
    if head[4:8] == b"ftyp":
        return _isobmff_brand(data)
    if _looks_like_svg(data[:2048]):
        return SVG
    return None


def _isobmff_brand(data: Body) -> str | None:
    size = int.from_bytes(data[0:4], "big")
    # bytes, not a slice of the body: the fetcher hands over a bytearray, whose slices are
    # unhashable, and the brands go into a set (every AVIF/HEIC over HTTP was a 422 TypeError).
    box = bytes(data[8 : max(16, min(size, 256))])
    brands = {box[0:4]} | {box[i : i + 4] for i in range(8, len(box) - 3, 4)}
    if brands & _AVIF_BRANDS:
        return AVIF
    if brands & _HEIC_BRANDS:
        return HEIC
    return None


def _looks_like_svg(head: Body) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<?xml", b"<svg", b"<!doctype svg")) and b"<svg" in text
