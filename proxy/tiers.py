"""The tiers a thumbnail lives in: an in-process LRU bounded by bytes, Redis, and the store.

Every tier below memory speaks the same unit (a :class:`Thumbnail`, by key) through
``get``/``put`` and a ``name`` (the ``X-Thumb-Tier`` it answers as), so the service walks them
as one list, nearest first.

The Redis tier is redis-py's client, built from the URL as given (user, password, ``rediss://``
TLS, ``unix://`` sockets, ``?db=``). Redis being down or slow never fails a request: every
call has a short timeout, errors count as misses, and after a failure the tier rests for a
moment instead of paying a timeout on every request. ``available`` feeds /healthz.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis.asyncio import Redis

from proxy.storage import Store
from proxy.thumbnail import CorruptEntry, Thumbnail

log = logging.getLogger("thumbs.proxy")


class Tier(Protocol):
    name: str

    async def get(self, key: str) -> Thumbnail | None: ...

    async def put(self, key: str, entry: Thumbnail) -> None: ...


class MemoryLRU:
    """Least-recently-used thumbnails, at most ``capacity`` bytes of JPEG data (synchronous:
    the hit path reads it without awaiting anything)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._entries: OrderedDict[str, Thumbnail] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Thumbnail | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Thumbnail) -> None:
        cost = len(entry.data)
        if cost > self.capacity:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= len(old.data)
        self._entries[key] = entry
        self.size += cost
        while self.size > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted.data)


class RedisTier:
    """Thumbnails (and negative entries) in Redis under ``{prefix}thumb:`` with a TTL."""

    name = "redis"

    def __init__(self, url: str, prefix: str, ttl: int, *, timeout: float = 0.5, rest: float = 2.0) -> None:
        # From the URL itself: host/port/db/password alone dropped ACL users, TLS and unix sockets.
        self.client: Redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.namespace = f"{prefix}thumb:"  # the key layout aiocache used: cached entries stay valid
        self.timeout = timeout
        self.ttl = ttl
        self.rest = rest
        self._resting_until = 0.0
        self.last_error: str | None = None

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._resting_until

    async def close(self) -> None:
        await self.client.aclose()

    async def get(self, key: str) -> Thumbnail | None:
        blob = await self.get_raw(key)
        if not blob:
            return None
        try:
            return Thumbnail.unpack(blob)
        except CorruptEntry:
            log.warning("corrupt redis entry %s ignored", key)
            return None

    async def put(self, key: str, entry: Thumbnail) -> None:
        await self.set_raw(key, entry.pack(), ttl=self.ttl)

    async def get_raw(self, key: str) -> bytes | None:
        value = await self._call(lambda: self.client.get(self.namespace + key))
        return value if isinstance(value, bytes) else None

    async def set_raw(self, key: str, value: bytes, ttl: int) -> None:
        await self._call(lambda: self.client.set(self.namespace + key, value, ex=ttl))

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.exists(self.namespace + "health")
        except Exception as exc:
            self.mark_failed(exc)
            return False
        self._resting_until = 0.0
        self.last_error = None
        return True

    async def _call(self, command: Callable[[], Awaitable[Any]]) -> Any:
        if not self.available:
            return None
        try:
            # The socket timeouts bound the dial and each read; this bounds the whole command.
            async with asyncio.timeout(self.timeout):
                return await command()
        except Exception as exc:  # any Redis failure is a miss, never a failed request
            self.mark_failed(exc)
            return None

    def mark_failed(self, exc: Exception) -> None:
        if self.available:
            log.warning("redis tier unavailable: %s", exc)
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._resting_until = time.monotonic() + self.rest


class StoreTier:
    """The store (disk or object storage) as a tier of thumbnails: packs on the way in,
    unpacks (and checks) on the way out. An unreadable or corrupt entry is a miss, so the
    thumbnail is made again instead of failing the request."""

    name = "disk"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, key: str) -> Thumbnail | None:
        try:
            blob = await self.store.get(key)
            return Thumbnail.unpack(blob) if blob is not None else None
        except (OSError, CorruptEntry) as exc:
            log.warning("store entry %s unreadable (%s); regenerating", key, exc)
            return None

    async def put(self, key: str, entry: Thumbnail) -> None:
        """The durable copy: a store that cannot write is logged, and the thumbnail still served."""
        try:
            await self.store.put(key, entry.pack())
        except OSError as exc:
            log.error("could not store thumbnail %s: %s", key, exc)
