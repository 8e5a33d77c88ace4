"""Admission before download: what a worker may fetch at once, and what it keeps for a retry.

Sixty concurrent misses for different 20 MB sources once held 3.6 GB, because downloads were
unbounded and the "busy" 503 came only after the download. Now a miss first takes a slot in
the processing pool (or gets 503 + Retry-After without contacting the origin), then a ticket
from :class:`FetchBudget`: one of ``max_fetches`` concurrent downloads and a reservation of
bytes out of ``max_bytes`` in flight. A reservation starts at the byte cap, shrinks to the
declared length once the headers arrive, and is held until the render is done, so fetched
sources waiting for a pool thread count too. A ticket that cannot be had within the wait
limit is a 503 as well (still before any request to the origin).

:class:`SourceHold` keeps a fetched source whose render did not happen (the client left, the
pool refused) for a few seconds, so the retry does not download it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator

from proxy.errors import Overloaded
from proxy.sniff import Body


class FetchTicket:
    """One admitted download: a concurrency slot until :meth:`downloaded`, bytes until released."""

    def __init__(self, budget: FetchBudget, reserved: int) -> None:
        self._budget = budget
        self.reserved = reserved
        self.downloading = True

    def expect(self, size: int) -> None:
        """The origin declared ``size`` bytes: give back the rest of the reservation."""
        if size < self.reserved:
            self._budget._change(bytes_delta=size - self.reserved)
            self.reserved = size

    def downloaded(self, size: int) -> None:
        """The body is in memory (``size`` bytes): the download slot is free for the next one."""
        if self.downloading:
            self.downloading = False
            self._budget._change(fetch_delta=-1, bytes_delta=size - self.reserved)
            self.reserved = size

    def release(self) -> None:
        if self.downloading:
            self.downloading = False
            self._budget._change(fetch_delta=-1)
        self._budget._change(bytes_delta=-self.reserved)
        self.reserved = 0


class FetchBudget:
    """Per worker (one event loop): concurrent origin downloads and bytes in flight."""

    def __init__(self, max_fetches: int, max_bytes: int, per_fetch: int, wait_limit: float) -> None:
        self.max_fetches = max(1, max_fetches)
        self.max_bytes = max_bytes
        self.per_fetch = per_fetch  # the byte cap of one source: what a new download reserves
        self.wait_limit = wait_limit
        self.fetches = 0
        self.bytes = 0
        self.rejected = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def _fits(self, reserve: int) -> bool:
        if self.fetches >= self.max_fetches:
            return False
        # One download may always run alone, even if the cap is set above the budget.
        return self.bytes + reserve <= self.max_bytes or (self.bytes == 0 and self.fetches == 0)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[FetchTicket]:
        """A ticket for one download, waiting at most ``wait_limit`` s; :class:`Overloaded` after."""
        reserve = self.per_fetch
        if not self._fits(reserve):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.wait_limit
            while not self._fits(reserve):
                wake: asyncio.Future[None] = loop.create_future()
                self._waiters.add(wake)
                try:
                    async with asyncio.timeout_at(deadline):
                        await wake
                except TimeoutError:
                    self.rejected += 1
                    raise Overloaded("too many source downloads in progress, retry shortly", retry_after=2) from None
                finally:
                    self._waiters.discard(wake)
        self.fetches += 1
        self.bytes += reserve
        ticket = FetchTicket(self, reserve)
        try:
            yield ticket
        finally:
            ticket.release()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _change(self, *, fetch_delta: int = 0, bytes_delta: int = 0) -> None:
        self.fetches += fetch_delta
        self.bytes += bytes_delta
        if fetch_delta < 0 or bytes_delta < 0:
            for wake in self._waiters:  # each re-checks; the ones that still do not fit wait again
                if not wake.done():
                    wake.set_result(None)


class SourceHold:
    """Fetched-but-unrendered sources by URL, for ``seconds``, at most ``max_bytes`` in all."""

    def __init__(self, max_bytes: int, seconds: float) -> None:
        self.max_bytes = max_bytes
        self.seconds = seconds
        self.bytes = 0
        self._items: OrderedDict[str, tuple[float, Body]] = OrderedDict()

    def put(self, source: str, data: Body) -> None:
        if len(data) > self.max_bytes or self.seconds <= 0:
            return
        self._drop(source)
        self._expire()
        while self._items and self.bytes + len(data) > self.max_bytes:
            self._drop(next(iter(self._items)))
        self._items[source] = (time.monotonic() + self.seconds, data)
        self.bytes += len(data)

    def take(self, source: str) -> Body | None:
        """The held body (removed from the hold), or None if absent or expired."""
        self._expire()
        item = self._items.pop(source, None)
        if item is None:
            return None
        self.bytes -= len(item[1])
        return item[1]

    def __len__(self) -> int:
        return len(self._items)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._items:
            source, (expires, _) = next(iter(self._items.items()))
            if expires > now:
                break
            self._drop(source)

    def _drop(self, source: str) -> None:
        item = self._items.pop(source, None)
        if item is not None:
            self.bytes -= len(item[1])
