"""Waiting on conditions with a deadline, instead of sleeping a fixed time and hoping.

A fixed sleep is either too short on a loaded machine (a flaky failure) or too long
everywhere else; polling a condition returns as soon as it holds and fails with a message
naming what never happened.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], Any], within: float = 10.0, *, what: str = "condition", every: float = 0.02
) -> Any:
    """Poll ``predicate`` (sync, or returning an awaitable) until its result is truthy; return that result."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(every)


def wait_until_sync(
    predicate: Callable[[], T], within: float = 10.0, *, what: str = "condition", every: float = 0.02
) -> T:
    """:func:`wait_until` for threads and synchronous fixtures."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        time.sleep(every)


async def holds_for(
    predicate: Callable[[], Any], during: float, *, what: str = "condition", every: float = 0.01
) -> None:
    """Assert ``predicate`` stays truthy for ``during`` seconds: the window of an "and nothing else happens" check.

    An absence can only be observed over a window. This names the window and checks the condition
    all through it, instead of sleeping and looking once at the end.
    """
    deadline = time.monotonic() + during
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if not result:
            raise AssertionError(f"no longer true within {during:g} s: {what}")
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(every)


class ManualClock:
    """A stand-in for the ``time`` module of one product module (``monkeypatch.setattr(module, "time", clock)``).

    For expiry windows: the test moves the clock past the window instead of sleeping through it.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.monotonic() if start is None else start

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
