"""Generate-and-wait over the durable warm stream: how the backfill warms when Redis is set.

Each call appends its sources to the stream tagged ``reply:{call}``; whichever consumer
(`thumbs worker`, or a serving process with its consumer) finishes an entry pushes the
outcome to the list ``{prefix}warm:reply:{call}``, and the call collects them. If the caller
dies, the entries are still made (the resumed backfill finds them stored). When no consumer
is alive, Redis is down or answers stop coming, the call raises :class:`WarmUnavailable`,
so the backfill pauses with that reason instead of marking images failed for an outage.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from library_api.warm_client import WarmUnavailable
from proxy.warm import Warmer
from proxy.warm_queue import WAITED_TAG, RedisWarmQueue
from proxy.warm_types import WarmOutcome

REPLY_TAG = WAITED_TAG  # the consumer answers these at the first failure
REPLY_TTL = 3600
WAIT_TIMEOUT = 300.0
# A live consumer reads the stream at least every second between batches; a minute covers a slow batch.
CONSUMER_IDLE_SECONDS = 60.0


def reply_key(prefix: str, call: str) -> str:
    return f"{prefix}warm:reply:{call}"


def outcome_json(outcome: WarmOutcome) -> bytes:
    return orjson.dumps({
        "source": outcome.source, "ok": outcome.ok, "error": outcome.error, "detail": outcome.detail,
        "width": outcome.width, "height": outcome.height, "color": outcome.color,
    })


def outcome_from_json(raw: bytes) -> WarmOutcome:
    item = orjson.loads(raw)
    return WarmOutcome(source=str(item["source"]), ok=bool(item["ok"]), error=item.get("error"),
                       detail=item.get("detail"), width=item.get("width"), height=item.get("height"),
                       color=item.get("color"))


async def push_reply(client: Redis, prefix: str, tag: str, outcome: WarmOutcome) -> None:
    key = reply_key(prefix, tag.removeprefix(REPLY_TAG))
    async with client.pipeline(transaction=True) as pipe:
        pipe.rpush(key, outcome_json(outcome))
        pipe.expire(key, REPLY_TTL)
        await pipe.execute()


class StreamWarmClient:
    def __init__(self, warmer: Warmer, redis_url: str, prefix: str, *, timeout: float = WAIT_TIMEOUT) -> None:
        self.warmer = warmer
        self.prefix = prefix
        self.timeout = timeout
        self.redis_url = redis_url
        self._client: Redis | None = None

    @property
    def client(self) -> Redis:
        if self._client is None:  # inside the event loop that uses it
            self._client = Redis.from_url(self.redis_url, socket_connect_timeout=1.0, socket_timeout=10.0)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        if not wait:
            return await self.warmer.warm(sources, wait=False, tags=tags)
        await self._require_consumer()
        call = secrets.token_hex(8)
        unique = list(dict.fromkeys(sources))
        queued = await self.warmer.warm(unique, wait=False, tags=[REPLY_TAG + call] * len(unique))
        if any(outcome.error == "queue_unavailable" for outcome in queued):
            raise WarmUnavailable("the warm stream (Redis) is unavailable")
        answers: dict[str, WarmOutcome] = {o.source: o for o in queued if not o.ok}
        # Consumers answer with the origin each entry stands for; map it back to what was asked.
        waiting = {self.warmer.resolve(o.source).source: o.source for o in queued if o.ok}
        key = reply_key(self.prefix, call)
        deadline = time.monotonic() + self.timeout
        try:
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WarmUnavailable(
                        f"{len(waiting)} of {len(unique)} warm-ups got no answer within {self.timeout:g} s")
                item = await self.client.blpop([key], timeout=min(5.0, max(left, 0.1)))
                if item is None:
                    await self._require_consumer()
                    continue
                raw = item[1]
                outcome = outcome_from_json(raw if isinstance(raw, bytes) else raw.encode())
                asked = waiting.pop(outcome.source, None)
                if asked is not None:
                    answers[asked] = WarmOutcome(asked, outcome.ok, outcome.error, outcome.detail, outcome.width,
                                                 outcome.height, outcome.color)
        except (RedisError, OSError) as exc:
            raise WarmUnavailable(f"the warm stream (Redis) is unavailable: {type(exc).__name__}") from exc
        finally:
            await asyncio.shield(self._forget(key))
        return [answers[source] for source in sources]

    async def _forget(self, key: str) -> None:
        try:
            await self.client.delete(key)
        except (RedisError, OSError):
            pass  # it expires by itself

    async def _require_consumer(self) -> None:
        """Fail fast when nobody consumes the stream: the backfill then pauses, saying why."""
        queue = self.warmer.queue
        if not isinstance(queue, RedisWarmQueue):
            raise WarmUnavailable("the warm queue is not the Redis stream")
        try:
            live = await queue.live_consumers(CONSUMER_IDLE_SECONDS)
        except (RedisError, OSError) as exc:
            raise WarmUnavailable(f"the warm stream (Redis) is unavailable: {type(exc).__name__}") from exc
        if not live:
            raise WarmUnavailable("no thumbs worker is consuming the warm stream (start `thumbs worker`)")
