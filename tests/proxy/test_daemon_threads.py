"""The processing pool's threads: bounded shutdown, queued jobs cancelled, no cycle after a failure."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest

from proxy.daemon_threads import DaemonThreads


class Body(bytearray):
    """A source body that a weak reference can watch."""


def test_shutdown_gives_up_on_a_job_that_never_ends_and_cancels_the_queued_ones() -> None:
    threads = DaemonThreads(1, name="vips")
    began, release = threading.Event(), threading.Event()

    def stuck() -> bool:
        began.set()
        return release.wait(30)

    running = threads.submit(stuck)
    queued = threads.submit(lambda: "never")
    assert began.wait(5)
    started = time.monotonic()
    left = threads.shutdown(timeout=0.3)
    assert left == ["vips_0"] and time.monotonic() - started < 3
    assert queued.cancelled() and not running.done()
    with pytest.raises(RuntimeError):
        threads.submit(lambda: None)
    release.set()
    assert running.result(5) is True


def test_a_finished_pool_shuts_down_at_once_and_results_come_back() -> None:
    threads = DaemonThreads(2, name="vips")
    assert [threads.submit(pow, 2, n).result(5) for n in range(4)] == [1, 2, 4, 8]
    assert threads.shutdown(timeout=5) == []


def test_a_failed_job_leaves_no_cycle_holding_its_arguments() -> None:
    def fail(body: Body) -> None:
        raise ValueError(len(body))

    threads = DaemonThreads(1, name="vips")
    gc.disable()
    try:
        body = Body(b"x" * 1000)
        watched = weakref.ref(body)
        future = threads.submit(fail, body)
        with pytest.raises(ValueError):
            future.result(5)
        del body, future
        threads.shutdown(timeout=5)  # the thread has let go of its last job
        assert watched() is None  # freed by reference counting alone, not left for the GC
    finally:
        gc.enable()
