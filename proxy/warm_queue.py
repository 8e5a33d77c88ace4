"""The warm queue: in-process, or a Redis Stream with a consumer group.

Both retry transient failures (origin 502/504, overload 503) with exponential backoff and
park a source after ``max_attempts``; permanent failures (the image itself is bad) are
dropped after one try, since the negative cache already remembers them. An entry a caller
waits on (tagged :data:`WAITED_TAG`) is answered at its first failure, transient or not. The Redis Stream
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
from proxy.warm_types import WarmOutcome

log = logging.getLogger("thumbs.proxy")

# Makes one queued thumbnail (raising ProxyError when it cannot) and says what it made.
Handler = Callable[[str], Awaitable[WarmOutcome]]
# Told once per entry when it reaches a final state (made, failed for good, or parked), with
# the entry's opaque tag (the library uses the image id to write the outcome to its row).
Finished = Callable[[str, str | None, WarmOutcome], Awaitable[None]]
TRANSIENT_STATUSES = frozenset({502, 503, 504})
# Redis down: the consumer retries after 0.5, 1, 2, 4, 5, 5 ... s (quick to notice a restart, quiet in an outage).
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0


# A tag that starts with this names a caller waiting for the outcome (the backfill over the stream):
# its first failure is the answer, and the caller decides what to retry. Rescheduled instead, the
# answer would come after the backoff's minutes, past the caller's wait.
WAITED_TAG = "reply:"


def is_transient(exc: BaseException) -> bool:
    return not isinstance(exc, ProxyError) or exc.status in TRANSIENT_STATUSES


def retried(exc: BaseException, tag: str | None) -> bool:
    """Whether a failure is tried again later rather than answered now."""
    return is_transient(exc) and not (tag or "").startswith(WAITED_TAG)


def queue_full(detail: str) -> ProxyError:
    return ProxyError(detail, status=503, code="queue_unavailable", headers={"Retry-After": "5"})


def failure_outcome(source: str, exc: BaseException, attempts: int | None = None) -> WarmOutcome:
    code = exc.code if isinstance(exc, ProxyError) else "warm_failed"
    detail = exc.detail if isinstance(exc, ProxyError) else f"{type(exc).__name__}: {exc}"
    if attempts is not None:
        detail = f"gave up after {attempts} attempts: {detail}"
    return WarmOutcome(source, False, code, detail[:500])


async def _nothing_to_report(source: str, tag: str | None, outcome: WarmOutcome) -> None:
    return None


class WarmQueue(Protocol):
    async def put(self, sources: Sequence[str], tags: Sequence[str | None] | None = None) -> None: ...

    async def depth(self) -> int: ...

    async def consume(self, handle: Handler, concurrency: int, finished: Finished = _nothing_to_report) -> None: ...

    async def close(self) -> None: ...


class MemoryWarmQueue:
    """A single process's queue: bounded, with delayed retries and a parking list."""

    def __init__(self, max_items: int = 10_000, max_attempts: int = 5, backoff: float = 1.0) -> None:
        self.max_items = max_items
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.parked: deque[tuple[str, str]] = deque(maxlen=1000)
        self._queue: asyncio.Queue[tuple[str, int, str | None]] = asyncio.Queue()
        self._delayed = 0

    async def put(self, sources: Sequence[str], tags: Sequence[str | None] | None = None) -> None:
        if self._queue.qsize() + self._delayed + len(sources) > self.max_items:
            raise queue_full("the warm queue is full")
        for source, tag in zip(sources, tags or [None] * len(sources), strict=True):
            self._queue.put_nowait((source, 0, tag))

    async def depth(self) -> int:
        return self._queue.qsize() + self._delayed

    async def close(self) -> None:
        return None

    async def consume(self, handle: Handler, concurrency: int, finished: Finished = _nothing_to_report) -> None:
        workers = [asyncio.create_task(self._work(handle, finished)) for _ in range(max(1, concurrency))]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()

    async def _work(self, handle: Handler, finished: Finished) -> None:
        while True:
            source, attempts, tag = await self._queue.get()
            try:
                outcome: WarmOutcome | None = await handle(source)
            except Exception as exc:
                outcome = self._failed(source, attempts + 1, tag, exc)
            if outcome is not None:
                try:
                    await finished(source, tag, outcome)
                except Exception:
                    log.exception("recording the warm outcome of %s failed", source)

    def _failed(self, source: str, attempts: int, tag: str | None, exc: Exception) -> WarmOutcome | None:
        """The final outcome, or None when the entry was rescheduled."""
        if not retried(exc, tag):
            log.info("warm %s failed%s: %s", source, "" if is_transient(exc) else " permanently", exc)
            return failure_outcome(source, exc)
        if attempts >= self.max_attempts:
            log.warning("warm %s parked after %d attempts: %s", source, attempts, exc)
            self.parked.append((source, str(exc)))
            return failure_outcome(source, exc, attempts)
        self._delayed += 1
        delay = self.backoff * 2 ** (attempts - 1)
        asyncio.get_running_loop().call_later(delay, self._retry, source, attempts, tag)
        return None

    def _retry(self, source: str, attempts: int, tag: str | None) -> None:
        self._delayed -= 1
        self._queue.put_nowait((source, attempts, tag))


# Move due retries back into the stream atomically, so no entry is lost or doubled.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, item in ipairs(due) do
  local entry = cjson.decode(item)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'source', entry.source, 'attempts', entry.attempts,
             'tag', entry.tag or '')
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
        self.alive_set = f"{prefix}warm:consumers"  # consumer -> last time it looked for work
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.claim_idle_ms = claim_idle_ms
        self.max_len = max_len
        self.block_ms = block_ms
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"

    async def close(self) -> None:
        await self.client.aclose()

    async def put(self, sources: Sequence[str], tags: Sequence[str | None] | None = None) -> None:
        """Append to the stream; once this returns the entries survive this process."""
        if not sources:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for source, tag in zip(sources, tags or [None] * len(sources), strict=True):
                    fields = {"source": source, "attempts": 0, "tag": tag or ""}
                    pipe.xadd(self.stream, fields, maxlen=self.max_len, approximate=True)  # type: ignore[arg-type]
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

    async def live_consumers(self, within: float) -> int:
        """Consumers that looked for work in the last ``within`` seconds (a blocked read
        creates no consumer in the group, so the group itself cannot tell)."""
        now = time.time()
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self.alive_set, "-inf", now - max(within, 3600))
            pipe.zcount(self.alive_set, now - within, "+inf")
            _, live = await pipe.execute()
        return int(live)

    async def _ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self._warn_if_queue_is_evictable()

    async def _warn_if_queue_is_evictable(self) -> None:
        """At maxmemory an ``allkeys-*`` policy may evict the stream itself: every queued warm-up at once."""
        try:
            policy = (await self.client.config_get("maxmemory-policy")).get("maxmemory-policy", "")
        except ResponseError:  # CONFIG is often renamed or disabled on managed Redis
            return
        if str(policy).startswith("allkeys"):
            log.warning("redis maxmemory-policy is %s: at its memory limit Redis may evict the warm queue; "
                        "use volatile-lru (only keys with a TTL, the cached thumbnails, are evicted)", policy)

    async def consume(self, handle: Handler, concurrency: int, finished: Finished = _nothing_to_report) -> None:
        ready = False
        failures = 0  # in a row: the pause doubles up to RETRY_MAX_S, and the log says so once a minute
        while True:
            try:
                if not ready:
                    await self._ensure_group()
                    ready = True
                    if failures:
                        log.warning("warm consumer: redis is back after %d failed attempt(s)", failures)
                        failures = 0
                now = time.time()
                await self.client.zadd(self.alive_set, {self.consumer: now})
                await self.client.eval(_PROMOTE, 2, self.retry_set, self.stream, now, self.max_len)
                entries = await self._claim_stale(concurrency) or await self._read_new(concurrency)
                await asyncio.gather(
                    *(self._process(handle, finished, entry_id, fields) for entry_id, fields in entries)
                )
            except (RedisError, OSError) as exc:
                pause = min(RETRY_MAX_S, RETRY_FIRST_S * 2**failures)
                if failures == 0 or failures % max(1, int(60 / RETRY_MAX_S)) == 0:
                    log.warning("warm consumer: redis unavailable (%s); retrying every %.0f s at most", exc,
                                RETRY_MAX_S)
                failures += 1
                ready = False
                await asyncio.sleep(pause)

    async def _claim_stale(self, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Entries a dead consumer read but never acknowledged."""
        result = await self.client.xautoclaim(
            self.stream, self.GROUP, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0", count=count
        )
        return [(entry_id, fields) for entry_id, fields in result[1] if fields]

    async def _read_new(self, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        # [[stream, [(id, fields), ...]], ...] (redis-py's stubs type the reply loosely)
        result: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = await self.client.xreadgroup(
            self.GROUP, self.consumer, {self.stream: ">"}, count=count, block=self.block_ms
        )  # type: ignore[assignment]
        return [entry for _, entries in result or [] for entry in entries]

    async def _process(self, handle: Handler, finished: Finished, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        source = fields.get(b"source", b"").decode("utf-8", "replace")
        tag = fields.get(b"tag", b"").decode("utf-8", "replace") or None
        try:
            attempts = int(fields.get(b"attempts", b"0") or 0) + 1
        except ValueError:
            attempts = self.max_attempts  # a damaged entry gets one last try
        try:
            outcome: WarmOutcome | None = await handle(source)
        except Exception as exc:
            outcome = await self._failed(source, attempts, tag, exc)
        if outcome is not None:
            try:
                await finished(source, tag, outcome)
            except Exception:
                # Not acknowledged: the entry stays pending and a live consumer claims it again
                # (the thumbnail is stored by then, so the retry only writes the outcome).
                log.exception("recording the warm outcome of %s failed; left pending", source)
                return
        await self.client.xack(self.stream, self.GROUP, entry_id)

    async def _failed(self, source: str, attempts: int, tag: str | None, exc: Exception) -> WarmOutcome | None:
        """The final outcome, or None when the entry was rescheduled."""
        if not retried(exc, tag):
            log.info("warm %s failed%s: %s", source, "" if is_transient(exc) else " permanently", exc)
            return failure_outcome(source, exc)
        if attempts >= self.max_attempts:
            log.warning("warm %s parked after %d attempts: %s", source, attempts, exc)
            await self.client.xadd(
                self.parked_stream, {"source": source, "attempts": attempts, "error": str(exc)[:500], "tag": tag or ""},
                maxlen=100_000, approximate=True,
            )
            return failure_outcome(source, exc, attempts)
        due = time.time() + self.backoff * 2 ** (attempts - 1)
        member = orjson.dumps({"source": source, "attempts": attempts, "tag": tag or "", "nonce": secrets.token_hex(4)})
        await self.client.zadd(self.retry_set, {member: due})
        return None
