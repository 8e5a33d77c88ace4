"""Run a warm queue's consumer for a while, for tests that watch what it does (logs, retries)."""

from __future__ import annotations

import asyncio
import contextlib

from proxy.warm_queue import RedisWarmQueue
from proxy.warm_types import WarmOutcome


async def _nothing_to_consume(source: str) -> WarmOutcome:
    raise AssertionError(f"the test queued nothing, yet {source} was consumed")


async def consume_for(queue: RedisWarmQueue, seconds: float) -> None:
    """``queue.consume`` with a handler that must never be called, cancelled after ``seconds``."""
    consumer = asyncio.create_task(queue.consume(_nothing_to_consume, 1))
    await asyncio.sleep(seconds)
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
