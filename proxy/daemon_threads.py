"""A fixed set of daemon threads taking jobs from one queue, with a shutdown that can give up.

Why not ``ThreadPoolExecutor``: its ``shutdown`` waits without a time limit or not at all, and
its threads are joined when the interpreter exits whatever ``shutdown`` said, so one render that
never returns (a decode running away inside libvips, which Python cannot interrupt) would keep a
stopping worker alive until it is killed. Here :meth:`DaemonThreads.shutdown` waits a bounded
time and reports what is still running; the process then exits without those threads. Their
work is a cache entry: a store write they never finish leaves only a temp file, which the
store's sweep removes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Future[Any], Callable[..., Any], tuple[object, ...]]


class DaemonThreads:
    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{index}", daemon=True) for index in range(count)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def queued(self) -> int:
        """Jobs submitted and not yet taken by a thread."""
        return self._jobs.qsize()

    def submit(self, function: Callable[..., T], *args: object) -> Future[T]:
        if self._closed:
            raise RuntimeError("the threads are shut down")
        future: Future[T] = Future()
        self._jobs.put((future, function, args))
        return future

    def shutdown(self, timeout: float) -> list[str]:
        """Cancel the queued jobs, wait up to ``timeout`` seconds for the running ones and give
        the names of the threads still running then (empty when all finished)."""
        self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in self._threads if thread.is_alive()]

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            _run(*job)
            del job  # an idle thread holds nothing of its last job (the source body)


def _run(future: Future[T], function: Callable[..., T], args: tuple[object, ...]) -> None:
    if not future.set_running_or_notify_cancel():
        return  # cancelled while queued
    try:
        result = function(*args)
    except BaseException as exc:
        future.set_exception(exc)
        # The exception's traceback holds this frame: drop its references, or the future, the
        # exception and the job's arguments (the source body) make a cycle only the GC frees.
        del future, function, args
    else:
        future.set_result(result)
