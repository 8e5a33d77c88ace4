"""Remembered failures, so a broken or hostile source cannot be hammered.

A failure that belongs to the source (413, 415, 422, 502, 504, and the 403 of a redirect the
source policy refuses: the origin answered it) is remembered for ``negative_ttl`` seconds in
process and, when configured, in Redis for the other workers. A source URL refused by the
policy itself (403, no origin asked) is not: refusing it again costs nothing, and remembering
every URL a client makes up would push out the failures worth keeping.

Only the failure's status, code and detail are kept, and every lookup answers a fresh error:
a raised exception holds its traceback, whose frames hold the request's locals (a failed
fetch's body buffer, up to the byte cap), and raising the same object again chains more
frames onto it. Kept as they were, 10,000 remembered failures could hold gigabytes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import NamedTuple

import orjson

from proxy.errors import NEGATIVE_CACHEABLE, ProxyError
from proxy.fetch import RefusedRedirect
from proxy.tiers import RedisTier

MAX_REMEMBERED = 10_000


class Remembered(NamedTuple):
    expires: float  # time.monotonic()
    status: int
    code: str
    detail: str

    def error(self) -> ProxyError:
        return ProxyError(self.detail, status=self.status, code=self.code)


class NegativeCache:
    def __init__(self, ttl: int, redis: RedisTier | None) -> None:
        self.ttl = ttl
        self.redis = redis
        self._local: OrderedDict[str, Remembered] = OrderedDict()

    def get_local(self, key: str) -> ProxyError | None:
        item = self._local.get(key)
        if item is None:
            return None
        if time.monotonic() >= item.expires:
            del self._local[key]
            return None
        return item.error()

    async def get(self, key: str) -> ProxyError | None:
        error = self.get_local(key)
        if error is None and self.redis is not None and self.ttl:
            error = decode(await self.redis.get_raw("neg:" + key))
            if error is not None:
                self._remember(key, error)
        return error

    async def put(self, key: str, error: ProxyError) -> None:
        if not self.ttl or not remembered(error):
            return
        self._remember(key, error)
        if self.redis is not None:
            await self.redis.set_raw("neg:" + key, encode(error), self.ttl)

    def _remember(self, key: str, error: ProxyError) -> None:
        self._local[key] = Remembered(time.monotonic() + self.ttl, error.status, error.code, error.detail)
        self._local.move_to_end(key)
        while len(self._local) > MAX_REMEMBERED:
            self._local.popitem(last=False)


def remembered(error: ProxyError) -> bool:
    """Whether the failure belongs to the source, so repeating the request cannot help for a while."""
    return error.status in NEGATIVE_CACHEABLE or isinstance(error, RefusedRedirect)


def encode(error: ProxyError) -> bytes:
    return orjson.dumps({"status": error.status, "error": error.code, "detail": error.detail})


def decode(raw: bytes | None) -> ProxyError | None:
    if not raw:
        return None
    try:
        item = orjson.loads(raw)
        return ProxyError(str(item["detail"]), status=int(item["status"]), code=str(item["error"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
