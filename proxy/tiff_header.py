"""How many pages a TIFF's directory chain holds, counted before libvips reads its header.

Why: libvips counts a TIFF's pages (``n-pages``) on every header read, and libtiff walks and
checks each directory at about 7 us; the render reads the header several times. A 20 MB file of
200,000 one-pixel pages cost 5.9 s of render CPU for a 1x1 thumbnail, where a real 20 MB photo
costs tens of milliseconds. Walking the chain here stops at the limit, so refusing such a file
costs microseconds; only the first page is ever rendered.
"""

from __future__ import annotations

from typing import Literal

from proxy.sniff import Body

# Far above any multi-page TIFF an image library holds (scans, faxes and stacks have tens).
MAX_PAGES = 1000


def page_count(data: Body, stop_after: int = MAX_PAGES) -> int | None:
    """The number of directories in the main chain, at most ``stop_after + 1`` (enough to
    refuse), or None when the header is not one this walk reads (libvips then decides)."""
    order = bytes(data[:2])
    if order not in (b"II", b"MM"):
        return None
    endian: Literal["little", "big"] = "little" if order == b"II" else "big"
    version = int.from_bytes(data[2:4], endian)
    if version == 42:
        offset_size, count_size, entry_size = 4, 2, 12
        offset = int.from_bytes(data[4:8], endian)
    elif version == 43:  # BigTIFF
        offset_size, count_size, entry_size = 8, 8, 20
        offset = int.from_bytes(data[8:16], endian)
    else:
        return None
    pages, seen = 0, set()
    while offset:
        if offset in seen or offset + count_size > len(data):
            break  # a loop or a dangling offset: libtiff stops there too
        seen.add(offset)
        pages += 1
        if pages > stop_after:
            break
        entries = int.from_bytes(data[offset:offset + count_size], endian)
        next_at = offset + count_size + entries * entry_size
        if next_at + offset_size > len(data):
            break
        offset = int.from_bytes(data[next_at:next_at + offset_size], endian)
    return pages
