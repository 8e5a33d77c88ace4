"""Single-flight: one origin fetch and one encode per missing thumbnail, however many ask.

Within a process, callers for the same key share one task (:class:`Flights`). Across
processes and hosts, the task first takes a Redis lease (``SET NX PX``) that its holder
renews while it works; others wait for the result to land in Redis, and take the lease
over if it expires because the holder died.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from proxy.errors import Overloaded
from proxy.gate import StartGate

T = TypeVar("T")

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
    "else return 0 end"
)


class _Flight(Generic[T]):
    """One shared task, the abandonable callers still waiting for it, and its render gate."""

    __slots__ = ("gate", "pinned", "task", "waiters")

    def __init__(self, task: asyncio.Task[T], gate: StartGate) -> None:
        self.task = task
        self.gate = gate
        self.waiters = 0
        self.pinned = False  # a caller that never abandons (a warm-up) joined


class Flights(Generic[T]):
    """In-process: concurrent calls with the same key await one shared task.

    Callers that pass ``abandonable=True`` (page views) may leave; when the last one has
    left, no other caller is pinning the flight, and its render has not started on a pool
    thread, the task is cancelled (the origin fetch aborted, a queued render dropped).
    Once the render has started it finishes and is cached, for whoever asks next.
    """

    def __init__(self, on_abandon: Callable[[], None] | None = None) -> None:
        self._flights: dict[str, _Flight[T]] = {}
        self._on_abandon = on_abandon
        self.coalesced = 0
        self.abandoned = 0

    def __len__(self) -> int:
        return len(self._flights)

    def waiting(self, key: str) -> int | None:
        """How many abandonable callers still wait on ``key``'s flight; None if there is no flight.

        Read-only, so a test can see a client's departure reach the flight instead of sleeping.
        """
        flight = self._flights.get(key)
        return None if flight is None else flight.waiters

    async def run(
        self, key: str, work: Callable[[StartGate], Awaitable[T]], *, abandonable: bool = False
    ) -> tuple[T, bool]:
        """The result and whether this caller joined an existing flight."""
        flight = self._flights.get(key)
        joined = flight is not None
        if flight is None:
            gate = StartGate()
            flight = _Flight(asyncio.ensure_future(work(gate)), gate)
            self._flights[key] = flight
            flight.task.add_done_callback(functools.partial(self._finished, key, flight))
        else:
            self.coalesced += 1
        if abandonable:
            flight.waiters += 1
        else:
            flight.pinned = True
        try:
            # Shielded: one caller leaving must not cancel work others are waiting for.
            return await asyncio.shield(flight.task), joined
        finally:
            if abandonable:
                flight.waiters -= 1
                self._abandon_if_unwanted(key, flight)
            # A failed task's exception carries this frame in its traceback: holding the flight
            # (and so the task) here would make a cycle that keeps the failure's frames, and the
            # source body in them, until the cyclic GC runs.
            del flight

    def _abandon_if_unwanted(self, key: str, flight: _Flight[T]) -> None:
        if flight.waiters or flight.pinned or flight.task.done() or not flight.gate.drop():
            return
        # Forget it now, so a caller arriving while the task unwinds starts a fresh flight.
        self._forget(key, flight)
        flight.task.cancel()
        self.abandoned += 1
        if self._on_abandon is not None:
            self._on_abandon()

    def _finished(self, key: str, flight: _Flight[T], _: object = None) -> None:
        self._forget(key, flight)
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved: a render everyone left may still fail, quietly

    def _forget(self, key: str, flight: _Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]


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


class RedisHealth(Protocol):
    """What coordination needs to know of Redis: whether to try it, and telling it it failed."""

    @property
    def available(self) -> bool: ...

    def mark_failed(self, exc: Exception) -> None: ...


class Coordinator:
    """One generation per key across processes: the caller that takes the Redis lease makes
    the result (renewing the lease while it works); the others poll ``lookup`` until the
    result lands in a shared tier, and take the lease over if it lapses (its holder died).

    Without Redis (or while it is resting after a failure) every process just makes it:
    duplicated work, never a failed request.
    """

    def __init__(
        self, leases: Leases | None, redis: RedisHealth | None, *, wait_limit: float,
        on_wait: Callable[[], None] = lambda: None,
    ) -> None:
        self.leases = leases
        self.redis = redis
        self.wait_limit = wait_limit
        self.on_wait = on_wait

    async def run(self, key: str, lookup: Callable[[], Awaitable[T | None]], make: Callable[[], Awaitable[T]]) -> T:
        """``lookup``: the result if some process made it (it may raise a remembered failure)."""
        if self.leases is None or self.redis is None:
            return await make()
        deadline = time.monotonic() + self.wait_limit
        waited = False
        while True:
            try:
                if not self.redis.available:
                    raise RedisError("redis tier is resting")
                lease = await self.leases.acquire(key)
            except (RedisError, OSError) as exc:
                self.redis.mark_failed(exc)
                return await make()
            if lease is not None:
                return await self._holding(lease, lookup, make)
            if not waited:
                self.on_wait()
                waited = True
            found = await self._wait_for_holder(key, lookup, deadline)
            if found is not None:
                return found
            # The lease vanished without a result: its holder died. Take over.

    @staticmethod
    async def _holding(lease: Lease, lookup: Callable[[], Awaitable[T | None]], make: Callable[[], Awaitable[T]]) -> T:
        keeper = asyncio.create_task(lease.keep_alive())
        try:
            # Someone may have finished between our miss and the lease.
            found = await lookup()
            return found if found is not None else await make()
        finally:
            keeper.cancel()
            with contextlib.suppress(RedisError, OSError):
                await lease.release()

    async def _wait_for_holder(self, key: str, lookup: Callable[[], Awaitable[T | None]], deadline: float) -> T | None:
        assert self.leases is not None and self.redis is not None
        delay = 0.02
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
            found = await lookup()
            if found is not None:
                return found
            try:
                if not await self.leases.held(key):
                    return None
            except (RedisError, OSError) as exc:
                self.redis.mark_failed(exc)
                return None
        raise Overloaded("timed out waiting for another worker to make this thumbnail", retry_after=2)
