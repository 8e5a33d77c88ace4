"""Disk entries are written without fsync, so every way a power loss could garble one must be a miss."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.storage import DiskStore
from proxy.thumbnail import CorruptEntry, Thumbnail
from tests.support import images

KEY = "ab" * 32


def _entry() -> bytes:
    return Thumbnail.create(images.jpeg(images.photo(120, 80)), 120, 80, "#102030").pack()


async def test_an_entry_round_trips_and_leaves_no_temp_file(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    blob = _entry()
    await store.put(KEY, blob)
    assert await store.get(KEY) == blob
    assert Thumbnail.unpack(blob).color == "#102030"
    assert _files(tmp_path) == [KEY]


def _files(root: Path) -> list[str]:
    return [path.name for path in root.rglob("*") if path.is_file()]


@pytest.mark.parametrize("damage", ["empty", "short", "zeroed_middle", "flipped_byte"])
def test_a_garbled_entry_is_refused(damage: str) -> None:
    blob = bytearray(_entry())
    middle = len(blob) - 400  # inside the JPEG data, away from both of its ends
    if damage == "empty":
        blob = bytearray()
    elif damage == "short":
        del blob[middle:]
    elif damage == "zeroed_middle":
        blob[middle : middle + 64] = bytes(64)
    else:
        blob[middle] ^= 0x01
    with pytest.raises(CorruptEntry):
        Thumbnail.unpack(bytes(blob))
