"""A bounded pool for libvips work: threads sized to the cores, a fixed-length queue.

pyvips releases the GIL, so threads give real parallelism. When every thread is busy and
the queue is full the caller gets :class:`Overloaded` (503 + Retry-After) at once instead
of memory growing with waiting source images. A miss takes its place with :meth:`reserve`
*before* it downloads the source, so the 503 comes before the origin is contacted, never
after a download it would waste.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TypeVar

from proxy.daemon_threads import DaemonThreads
from proxy.errors import Overloaded
from proxy.gate import Dropped, StartGate

T = TypeVar("T")
log = logging.getLogger("thumbs.proxy")


class PoolSlot:
    """A place in the pool taken ahead of the job (before its download); given back once."""

    def __init__(self, pool: ProcessingPool) -> None:
        self._pool = pool
        self.held = True  # counted in ``in_flight`` and not yet handed to a job

    def release(self) -> None:
        if self.held:
            self.held = False
            self._pool._release()


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (a container's cpuset, ``taskset``),
    not the machine's count, which ``os.cpu_count()`` gives."""
    affinity = getattr(os, "sched_getaffinity", None)  # not on macOS
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


class ProcessingPool:
    def __init__(self, threads: int, queue: int) -> None:
        self.threads = threads or usable_cores()
        self.capacity = self.threads + queue
        self.in_flight = 0  # running + waiting; touched only on the event loop
        self.rejected = 0
        self._executor: DaemonThreads | None = None

    def start(self) -> None:
        self._executor = DaemonThreads(self.threads, name="vips")

    def close(self, timeout: float = 8.0) -> None:
        """Cancel the queued jobs and wait up to ``timeout`` seconds for the running ones; a
        render still running then is left to end with the process (it cannot be interrupted)."""
        if self._executor is not None:
            left = self._executor.shutdown(timeout)
            self._executor = None
            if left:
                log.warning("%d render(s) still running %g s into the shutdown (%s); exiting without them",
                            len(left), timeout, ", ".join(left))

    @property
    def queued(self) -> int:
        """Jobs waiting for a thread (0 when the pool is not running)."""
        return self._executor.queued if self._executor is not None else 0

    @property
    def saturation(self) -> float:
        return self.in_flight / self.capacity

    def reserve(self) -> PoolSlot:
        """A place for a job that is yet to come; :class:`Overloaded` when the pool is full."""
        if self.in_flight >= self.capacity:
            self.rejected += 1
            raise Overloaded()
        self.in_flight += 1
        return PoolSlot(self)

    async def run(
        self, function: Callable[..., T], *args: object, gate: StartGate | None = None, slot: PoolSlot | None = None
    ) -> T:
        """``function(*args)`` on a pool thread. With a ``gate``, a job dropped before a thread
        starts it never runs; cancelling the caller while the job is queued frees its slot.
        With a ``slot`` from :meth:`reserve`, the job uses that place."""
        if self._executor is None:
            # Not started yet or already closed (a shutdown under way): transient, so it is never
            # remembered as the source's failure, and a warm-up keeps the bytes it downloaded.
            raise Overloaded("the processing pool is not running (starting or shutting down)")
        if slot is not None and slot.held:
            slot.held = False  # from here the job's completion gives the place back
        else:
            if self.in_flight >= self.capacity:
                self.rejected += 1
                raise Overloaded()
            self.in_flight += 1
        loop = asyncio.get_running_loop()
        # The slot is freed when the thread finishes, not when the caller stops waiting, so
        # cancelled requests cannot make the pool look emptier than it is. A job cancelled
        # while still queued (``wrap_future`` cancels a not-yet-started future) is done at
        # once: the callback runs and frees its slot.
        try:
            if gate is None:
                future = self._executor.submit(function, *args)
            else:
                future = self._executor.submit(_gated, gate, function, *args)
        except RuntimeError:
            self.in_flight -= 1
            raise Overloaded("the processing pool is shutting down") from None
        future.add_done_callback(lambda _: self._release_from_thread(loop))
        try:
            return await asyncio.wrap_future(future)
        finally:
            # The future keeps the render's exception, whose traceback keeps this frame (and the
            # thread's frames, with the source body): a cycle only the cyclic GC would free.
            del future

    def _release_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._release)
        except RuntimeError:  # the loop closed during shutdown; nothing left to count
            pass

    def _release(self) -> None:
        self.in_flight -= 1


def _gated(gate: StartGate, function: Callable[..., T], *args: object) -> T:
    if not gate.start():
        raise Dropped()
    return function(*args)
