"""Disk entries: written by the render thread, without fsync; every way a power loss can garble one is a miss."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.storage import DiskStore
from proxy.thumbnail import CorruptEntry, Thumbnail
from proxy.urls import cache_key
from proxy.variants import THUMB
from tests.proxy.conftest import running
from tests.support import images
from tests.support.origin import Origin
from thumbs.settings import Settings

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


def test_a_temp_name_another_writer_holds_is_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers in other processes or hosts share the shards: a name already taken is skipped."""
    store = DiskStore(tmp_path)
    shard = store.path(KEY).parent
    shard.mkdir(parents=True)
    taken = shard / f".tmp-{'00' * 8}"
    taken.write_bytes(b"another writer, mid-write")
    names = iter([bytes(8), bytes(8), b"\x01" * 8])
    monkeypatch.setattr("proxy.storage.os.urandom", lambda size: next(names))
    blob = _entry()
    store.put_blocking(KEY, blob)
    assert store.path(KEY).read_bytes() == blob
    assert taken.read_bytes() == b"another writer, mid-write"
    assert sorted(_files(tmp_path)) == sorted([KEY, taken.name])


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


async def test_a_miss_is_stored_by_the_render_thread_in_one_hop(
    make_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool thread that rendered the entry writes it: the loop never hands the write to another thread."""
    writers: list[str] = []
    write = DiskStore.put_blocking

    def recording(store: DiskStore, key: str, data: bytes) -> None:
        writers.append(threading.current_thread().name)
        write(store, key, data)

    async def no_async_put(store: DiskStore, key: str, data: bytes) -> None:
        raise AssertionError("the miss path handed the store write to a second thread")

    monkeypatch.setattr(DiskStore, "put_blocking", recording)
    monkeypatch.setattr(DiskStore, "put", no_async_put)
    source = origin.add(unique("one-hop.jpg"), images.jpeg(images.photo(300, 200)))
    async with running(make_settings()) as started:
        response = await started.thumb(source)
        assert response.status_code == 200
        assert writers and all(name.startswith("vips") for name in writers)
        key = cache_key(source, THUMB)
        stored = Thumbnail.unpack(await started.proxy.service.store.get(key) or b"")
        assert stored.data == response.content


async def test_a_store_write_that_fails_on_the_render_thread_still_serves(
    make_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def full_disk(store: DiskStore, key: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DiskStore, "put_blocking", full_disk)
    source = origin.add(unique("full-disk.jpg"), images.jpeg(images.photo(300, 200)))
    async with running(make_settings()) as started:
        first = await started.thumb(source)
        again = await started.thumb(source)
    assert first.status_code == again.status_code == 200
    assert first.headers["x-thumb-tier"] == "generated"
    assert again.headers["x-thumb-tier"] == "memory"  # the nearer tiers still took it
    assert "could not store thumbnail" in caplog.text
