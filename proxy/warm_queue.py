"""The warm queue: in-process, or a Redis Stream with a consumer group.

Both retry transient failures (origin 502/504, overload 503) with exponential backoff and
park a source after ``max_attempts``; permanent failures (the image itself is bad) are
dropped after one try, since the negative cache already remembers them. The Redis Stream
acknowledges an entry only once its thumbnail is stored or it has been rescheduled or
parked; entries left pending by a dead consumer are claimed by a live one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from proxy.errors import ProxyError

log = logging.getLogger("thumbs.proxy")

Handler = Callable[[str], Awaitable[None]]
TRANSIENT_STATUSES = frozenset({502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    return not isinstance(exc, ProxyError) or exc.status in TRANSIENT_STATUSES


def queue_full(detail: str) -> ProxyError:
    return ProxyError(detail, status=503, code="queue_unavailable", headers={"Retry-After": "5"})


class WarmQueue(Protocol):
    async def put(self, sources: Sequence[str]) -> None: ...

    async def depth(self) -> int: ...

    async def consume(self, handle: Handler, concurrency: int) -> None: ...

    async def close(self) -> None: ...


class MemoryWarmQueue:
    """A single process's queue: bounded, with delayed retries and a parking list."""

    def __init__(self, max_items: int = 10_000, max_attempts: int = 5, backoff: float = 1.0) -> None:
        self.max_items = max_items
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.parked: deque[tuple[str, str]] = deque(maxlen=1000)
        self._queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._delayed = 0

    async def put(self, sources: Sequence[str]) -> None:
        if self._queue.qsize() + self._delayed + len(sources) > self.max_items:
            raise queue_full("the warm queue is full")
        for source in sources:
            self._queue.put_nowait((source, 0))

    async def depth(self) -> int:
        return self._queue.qsize() + self._delayed

    async def close(self) -> None:
        return None

    async def consume(self, handle: Handler, concurrency: int) -> None:
        workers = [asyncio.create_task(self._work(handle)) for _ in range(max(1, concurrency))]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()

    async def _work(self, handle: Handler) -> None:
        while True:
            source, attempts = await self._queue.get()
            try:
                await handle(source)
            except Exception as exc:
                self._failed(source, attempts + 1, exc)

    def _failed(self, source: str, attempts: int, exc: Exception) -> None:
        if not is_transient(exc):
            log.info("warm %s failed permanently: %s", source, exc)
        elif attempts >= self.max_attempts:
            log.warning("warm %s parked after %d attempts: %s", source, attempts, exc)
            self.parked.append((source, str(exc)))
        else:
            self._delayed += 1
            asyncio.get_running_loop().call_later(self.backoff * 2 ** (attempts - 1), self._retry, source, attempts)

    def _retry(self, source: str, attempts: int) -> None:
        self._delayed -= 1
        self._queue.put_nowait((source, attempts))


# Move due retries back into the stream atomically, so no entry is lost or doubled.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, item in ipairs(due) do
  local entry = cjson.decode(item)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'source', entry.source, 'attempts', entry.attempts)
  redis.call('ZREM', KEYS[1], item)
end
return #due
"""


class RedisWarmQueue:
    """``{prefix}warm`` stream, group ``warmers``; retries in ``{prefix}warm:retry``, parked
    entries in ``{prefix}warm:parked``."""

    GROUP = "warmers"

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        max_attempts: int = 5,
        backoff: float = 1.0,
        claim_idle_ms: int = 60_000,
        max_len: int = 1_000_000,
        block_ms: int = 1000,
    ) -> None:
        # Its own connection pool: blocking reads must not share short socket timeouts.
        self.client: Redis = Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=block_ms / 1000 + 5)
        self.stream = f"{prefix}warm"
        self.retry_set = f"{prefix}warm:retry"
        self.parked_stream = f"{prefix}warm:parked"
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.claim_idle_ms = claim_idle_ms
        self.max_len = max_len
        self.block_ms = block_ms
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"

    async def close(self) -> None:
        await self.client.aclose()

    async def put(self, sources: Sequence[str]) -> None:
        if not sources:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for source in sources:
                    pipe.xadd(self.stream, {"source": source, "attempts": 0}, maxlen=self.max_len, approximate=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise queue_full(f"the warm queue (Redis) is unavailable: {type(exc).__name__}") from exc

    async def depth(self) -> int:
        try:
            await self._ensure_group()
            groups = await self.client.xinfo_groups(self.stream)
            waiting = 0
            for group in groups:
                if group.get("name") in (self.GROUP, self.GROUP.encode()):
                    lag = group.get("lag")
                    waiting = int(lag if lag is not None else await self.client.xlen(self.stream))
                    waiting += int(group.get("pending", 0))
            return waiting + int(await self.client.zcard(self.retry_set))
        except (RedisError, OSError):
            return 0

    async def _ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def consume(self, handle: Handler, concurrency: int) -> None:
        ready = False
        while True:
            try:
                if not ready:
                    await self._ensure_group()
                    ready = True
                await self.client.eval(_PROMOTE, 2, self.retry_set, self.stream, time.time(), self.max_len)
                entries = await self._claim_stale(concurrency) or await self._read_new(concurrency)
                await asyncio.gather(*(self._process(handle, entry_id, fields) for entry_id, fields in entries))
            except (RedisError, OSError) as exc:
                log.warning("warm consumer: redis unavailable (%s); retrying", exc)
                ready = False
                await asyncio.sleep(1.0)

    async def _claim_stale(self, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Entries a dead consumer read but never acknowledged."""
        result = await self.client.xautoclaim(
            self.stream, self.GROUP, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0", count=count
        )
        return [(entry_id, fields) for entry_id, fields in result[1] if fields]

    async def _read_new(self, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        result = await self.client.xreadgroup(
            self.GROUP, self.consumer, {self.stream: ">"}, count=count, block=self.block_ms
        )
        return [entry for _, entries in result or [] for entry in entries]

    async def _process(self, handle: Handler, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        source = fields.get(b"source", b"").decode("utf-8", "replace")
        attempts = int(fields.get(b"attempts", b"0") or 0) + 1
        try:
            await handle(source)
        except Exception as exc:
            await self._failed(source, attempts, exc)
        await self.client.xack(self.stream, self.GROUP, entry_id)

    async def _failed(self, source: str, attempts: int, exc: Exception) -> None:
        if not is_transient(exc):
            log.info("warm %s failed permanently: %s", source, exc)
        elif attempts >= self.max_attempts:
            log.warning("warm %s parked after %d attempts: %s", source, attempts, exc)
            await self.client.xadd(
                self.parked_stream, {"source": source, "attempts": attempts, "error": str(exc)[:500]},
                maxlen=100_000, approximate=True,
            )
        else:
            due = time.time() + self.backoff * 2 ** (attempts - 1)
            member = orjson.dumps({"source": source, "attempts": attempts, "nonce": secrets.token_hex(4)})
            await self.client.zadd(self.retry_set, {member: due})
