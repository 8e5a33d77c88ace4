"""Disk faults: a full disk, a read-only data directory, a crash between write and rename, and a
torn entry under a real key. Clear errors, the service keeps answering, nothing half-written
is ever served.

Full and read-only disks are real: a small tmpfs (or, where tmpfs cannot be mounted, an ext4
image on a loop device) mounted for the test, remounted read-only for the second case. It needs
root: elsewhere the tests skip, and in CI (CI=true) they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy.thumbnail import Thumbnail
from proxy.urls import cache_key
from proxy.variants import THUMB
from tests.conftest import cannot_run
from tests.proxy.conftest import running
from tests.support import images
from tests.support.origin import Origin
from tests.support.wait import wait_until
from thumbs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
JPEG_END = b"\xff\xd9"


def _mount_small_filesystem(mountpoint: Path, scratch: Path) -> str | None:
    """Mount a 512 KiB filesystem at ``mountpoint``: a tmpfs, else an ext4 image on a loop device.

    Returns None when mounted, or why neither could be.
    """
    tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mountpoint)],
                           capture_output=True, text=True)
    if tmpfs.returncode == 0:
        return None
    image = scratch / "disk.img"
    with image.open("wb") as handle:
        handle.truncate(2 * 1024 * 1024)  # ext4's own metadata takes some of it; a few hundred KiB stay free
    steps = [["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], ["mount", "-o", "loop", str(image), str(mountpoint)]]
    for argv in steps:
        try:
            result = subprocess.run(argv, capture_output=True, text=True)
        except FileNotFoundError:
            return f"tmpfs: {tmpfs.stderr.strip()}; loop device: {argv[0]} is not installed"
        if result.returncode != 0:
            return f"tmpfs: {tmpfs.stderr.strip()}; loop device: {result.stderr.strip()}"
    return None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, tiny filesystem of the test's own (it can fill up or be remounted read-only)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        cannot_run("a full or read-only disk is a mounted filesystem, which needs root")
    why_not = _mount_small_filesystem(mountpoint, tmp_path)
    if why_not is not None:
        cannot_run(f"cannot mount a small filesystem: {why_not}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def _fill(disk: Path) -> None:
    """Leave the filesystem with no free block."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def _entries(store: Path) -> list[Path]:
    return [path for path in store.rglob("*") if path.is_file()]


async def test_disk_full_serves_from_memory_reports_down_and_leaves_no_partial_files(
    make_settings: Callable[..., Settings], origin: Origin, unique, small_disk: Path
) -> None:
    settings = make_settings(data_dir=small_disk / "data")
    first = origin.add(unique("a.jpg"), images.jpeg(images.photo(400, 300)))
    second = origin.add(unique("b.jpg"), images.jpeg(images.photo(400, 300)))
    async with running(settings) as proxy:
        assert (await proxy.thumb(first)).status_code == 200  # stored while there was room
        _fill(small_disk)
        full = await proxy.thumb(second)
        assert full.status_code == 200 and full.content.endswith(JPEG_END)  # served, just not kept
        assert (await proxy.thumb(second)).headers["x-thumb-tier"] == "memory"
        health = await proxy.client.get("/readyz")
        assert health.status_code == 503 and health.json()["checks"]["disk"]["ok"] is False
        assert "No space" in health.json()["checks"]["disk"]["detail"]
    entries = _entries(settings.store_dir)
    assert [path.name for path in entries] == [cache_key(first, THUMB)]  # no temp or partial file left
    (small_disk / "filler").unlink()
    async with running(settings) as proxy:  # room again: a restart regenerates and keeps it
        again = await proxy.thumb(second)
        assert again.status_code == 200 and again.headers["x-thumb-tier"] == "generated"
        assert (await proxy.client.get("/readyz")).status_code == 200
    assert all(Thumbnail.unpack(path.read_bytes()).data.endswith(JPEG_END) for path in _entries(settings.store_dir))


async def test_read_only_data_dir_keeps_serving_and_says_so(
    make_settings: Callable[..., Settings], origin: Origin, unique, small_disk: Path
) -> None:
    settings = make_settings(data_dir=small_disk / "data")
    cached = origin.add(unique("cached.jpg"), images.jpeg(images.photo(300, 200)))
    fresh = origin.add(unique("fresh.jpg"), images.jpeg(images.photo(300, 200)))
    async with running(settings) as proxy:
        assert (await proxy.thumb(cached)).status_code == 200
    await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,ro", str(small_disk)], check=True)
    async with running(settings) as proxy:
        from_disk = await proxy.thumb(cached)
        assert from_disk.status_code == 200 and from_disk.headers["x-thumb-tier"] == "disk"
        made = await proxy.thumb(fresh)
        assert made.status_code == 200 and made.headers["x-thumb-tier"] == "generated"
        health = await proxy.client.get("/readyz")
        assert health.status_code == 503 and health.json()["status"] == "down"
        assert "Read-only" in health.json()["checks"]["disk"]["detail"]
    assert [path.name for path in _entries(settings.store_dir)] == [cache_key(cached, THUMB)]


KILL_BEFORE_RENAME = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    import proxy.storage as storage
    from proxy.thumbnail import Thumbnail

    def die(src, dst):
        os.kill(os.getpid(), signal.SIGKILL)  # the temp file is written and fsynced; the rename never happens

    storage.os.replace = die
    root, key, data = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]).read_bytes()
    asyncio.run(storage.DiskStore(root).put(key, data))
    """
)


async def test_killed_between_write_and_rename_nothing_half_written_is_served(
    make_settings: Callable[..., Settings], origin: Origin, unique, tmp_path: Path
) -> None:
    settings = make_settings()
    source = origin.add(unique("k.jpg"), images.jpeg(images.photo(300, 200)))
    key = cache_key(source, THUMB)
    # What the dying process was writing: a real entry for this key, but with a poisoned image.
    poisoned = Thumbnail.create(images.jpeg(images.solid(10, 10, (0, 0, 0))), 1, 1, "#000000").pack()
    payload = tmp_path / "payload"
    payload.write_bytes(poisoned)
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", KILL_BEFORE_RENAME, str(settings.store_dir), key, str(payload)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    assert result.returncode == -9, result.stderr.decode()
    leftovers = _entries(settings.store_dir)
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-")  # died with a complete temp file
    assert leftovers[0].read_bytes() == poisoned
    async with running(settings) as proxy:
        response = await proxy.thumb(source)
    assert response.status_code == 200 and response.headers["x-thumb-tier"] == "generated"
    assert response.content != Thumbnail.unpack(poisoned).data
    assert origin.hits[unique("k.jpg")] == 1


async def test_abandoned_temp_files_are_swept_at_start_and_live_ones_kept(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    """A writer killed before its rename leaves a temp file; the next start removes it once it is old."""
    settings = make_settings()
    shard = settings.store_dir / "ab" / "cd"
    shard.mkdir(parents=True)
    abandoned, live = shard / ".tmp-abandoned", shard / ".tmp-live"
    abandoned.write_bytes(b"x" * 1000)
    live.write_bytes(b"y" * 1000)  # another process sharing the store, mid-write
    two_hours_ago = time.time() - 7200
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    source = origin.add(unique("sweep.jpg"), images.jpeg(images.photo(120, 90)))
    async with running(settings) as proxy:
        assert (await proxy.thumb(source)).status_code == 200
        await wait_until(lambda: not abandoned.exists(), what="the background sweep")  # it runs in the background
    assert live.read_bytes() == b"y" * 1000


async def test_a_torn_entry_under_a_real_key_is_regenerated_not_served(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    """A tail lost after a crash, or a store restored or copied partially: header intact, JPEG cut."""
    settings = make_settings()
    source = origin.add(unique("torn.jpg"), images.jpeg(images.photo(400, 300)))
    async with running(settings) as proxy:
        whole = (await proxy.thumb(source)).content
    path = next(path for path in _entries(settings.store_dir) if not path.name.startswith("."))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) - len(whole) // 2])
    async with running(settings) as proxy:
        response = await proxy.thumb(source)
    assert response.status_code == 200 and response.content.endswith(JPEG_END)
    assert response.headers["x-thumb-tier"] == "generated" and response.content == whole
    assert origin.hits[unique("torn.jpg")] == 2
