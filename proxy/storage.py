"""Where finished thumbnails live for good: a small Store interface and a disk implementation.

Keys are the content addresses from :func:`proxy.urls.cache_key` (hex SHA-256 of pipeline
version, variant and source). Stores are chosen by ``THUMBS_STORE_URL``
(:func:`proxy.stores.store_from_url`): this disk store, or the S3-compatible object store in
:mod:`proxy.object_store`. Everything else sees only :class:`Store`; a store that cannot be
reached raises :class:`OSError` (the service then regenerates or serves without keeping).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

# Larger than any entry (the pipeline caps a thumbnail at 20 KB).
HEALTH_PROBE_BYTES = 32 * 1024
# A temp file this old belongs to a writer that died between write and rename: no live write
# takes an hour, and other processes sharing the store may be mid-write on younger ones.
ABANDONED_TEMP_SECONDS = 3600


class Store(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, data: bytes) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def check_writable(self) -> None:
        """Raise OSError unless one thumbnail could be written now (readiness)."""
        ...

    async def sweep(self) -> int:
        """Start-up housekeeping (abandoned partial writes); how many entries it removed."""
        ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """Where it keeps things, for logs (no secrets)."""
        ...


@runtime_checkable
class BlockingStore(Protocol):
    """A store whose write is plain blocking file I/O. The pool thread that has just rendered
    an entry writes it itself: one thread hop per miss instead of a second one to store it."""

    def put_blocking(self, key: str, data: bytes) -> None: ...


class DiskStore:
    """``root/ab/cd/abcd….bin``: sharded by key prefix, written atomically.

    A write goes to a temp file in the same directory, then is renamed over the final name,
    so a process that dies mid-write never leaves a half file under a real key: readers see
    the whole entry or none. There is no fsync (it was 0.5-1.4 ms of wall time and ~0.15 ms
    of CPU per entry, bench/fetch_cpu.py): an entry is a cache line that can be made again,
    and what a power loss could leave behind (an empty, short or garbled file under a real
    name) is refused by :meth:`Thumbnail.unpack`'s checks (header, JPEG ends, ETag digest) and
    regenerated.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        if len(key) < 5 or not all(c.isalnum() or c in "._-" for c in key):
            raise ValueError(f"not a store key: {key!r}")
        return self.root / key[0:2] / key[2:4] / key

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._read, self.path(key))

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self.put_blocking, key, data)

    def put_blocking(self, key: str, data: bytes) -> None:
        self._write(self.path(key), data)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).is_file)

    async def check_writable(self) -> None:
        await asyncio.to_thread(self.check_writable_now)

    async def sweep(self) -> int:
        return await asyncio.to_thread(self.sweep_abandoned_temp_files)

    async def close(self) -> None:
        return None

    def describe(self) -> str:
        return f"file://{self.root.resolve()}"

    def check_writable_now(self) -> None:
        """Write room for one thumbnail: an empty file still fits on a full disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".health-") as probe:
            probe.write(b"\0" * HEALTH_PROBE_BYTES)
            probe.flush()

    def sweep_abandoned_temp_files(self, older_than: float = ABANDONED_TEMP_SECONDS) -> int:
        """Remove temp files left by writers killed before their rename; returns how many."""
        cutoff = time.time() - older_than
        removed = 0
        for temp in self.root.glob("*/*/.tmp-*"):
            try:
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:  # another process swept it first
                continue
        return removed

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        # Plain os calls on str paths: pathlib's mkdir on every write and mkstemp's Python name
        # generator were 0.06 of a write's 0.20 ms CPU on shards already made (the rest is the
        # kernel's create, write and rename).
        directory = os.fspath(path.parent)
        fd, temp = _create_temp(directory)
        try:
            try:
                view = memoryview(data)
                while view:  # a raw write may take only part of it
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_TEMP_ATTEMPTS = 16


def _create_temp(directory: str) -> tuple[int, str]:
    """A new temp file in ``directory`` (made on first use): a random name, so writers in other
    processes and on other hosts sharing the store never collide (``O_EXCL`` would refuse it)."""
    for _ in range(_TEMP_ATTEMPTS):
        temp = f"{directory}/.tmp-{os.urandom(8).hex()}"
        try:
            return os.open(temp, _TEMP_FLAGS, 0o644), temp
        except FileExistsError:
            continue
        except FileNotFoundError:  # the shard's first entry
            os.makedirs(directory, exist_ok=True)
    raise FileExistsError(f"no free temp name in {directory} after {_TEMP_ATTEMPTS} tries")
