"""Single-flight: one origin fetch and one encode per missing thumbnail, however many ask.

Within a process, callers for the same key share one task (:class:`Flights`). Across
processes and hosts, the task first takes a Redis lease (``SET NX PX``) that its holder
renews while it works; others wait for the result to land in Redis, and take the lease
over if it expires because the holder died.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.asyncio import Redis

T = TypeVar("T")

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
    "else return 0 end"
)


class Flights(Generic[T]):
    """In-process: concurrent calls with the same key await one shared task."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[T]] = {}
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._tasks)

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The result and whether this caller joined an existing flight."""
        task = self._tasks.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.ensure_future(work())
            self._tasks[key] = task
            task.add_done_callback(lambda _: self._tasks.pop(key, None))
        else:
            self.coalesced += 1
        # Shielded: a client that disconnects must not cancel work others are waiting for.
        return await asyncio.shield(task), joined


class Lease:
    """A Redis build lease for one key; ``renew`` keeps it while the holder is alive."""

    def __init__(self, client: Redis, name: str, token: str, millis: int) -> None:
        self.client = client
        self.name = name
        self.token = token
        self.millis = millis

    async def renew(self) -> bool:
        return bool(await self.client.eval(_RENEW, 1, self.name, self.token, self.millis))

    async def release(self) -> None:
        await self.client.eval(_RELEASE, 1, self.name, self.token)

    async def keep_alive(self) -> None:
        """Renew every third of the lease until cancelled."""
        while True:
            await asyncio.sleep(self.millis / 3000)
            try:
                if not await self.renew():
                    return
            except Exception:  # Redis trouble: the lease may lapse and someone else take over
                return


class Leases:
    def __init__(self, client: Redis, prefix: str, millis: int = 5000) -> None:
        self.client = client
        self.prefix = f"{prefix}lock:"
        self.millis = millis

    def name(self, key: str) -> str:
        return self.prefix + key

    async def acquire(self, key: str) -> Lease | None:
        token = secrets.token_hex(8)
        if await self.client.set(self.name(key), token, nx=True, px=self.millis):
            return Lease(self.client, self.name(key), token, self.millis)
        return None

    async def held(self, key: str) -> bool:
        return bool(await self.client.exists(self.name(key)))
