"""Warming thumbnails of freshly ingested images, off the request path.

One of two ways, chosen by the composition root (one place: ``thumbs.app``):

- **Durable** (Redis configured): before ``POST /library/images`` answers 201 the image is
  appended to the proxy's warm stream, tagged with its id; whichever ``thumbs worker`` (or
  serving process with a consumer) takes it generates the thumbnail and writes the outcome
  to the row. A process killed right after answering loses nothing.
- **In-process** (the embedded one-process default): a bounded asyncio queue; a few workers
  take batches, ask the warm client to generate and wait, and record each outcome. If the
  process stops, rows simply stay ``pending`` and the backfill job is the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from databases import Database

from library_api.config import LibraryConfig
from library_api.db import UNAVAILABLE_ERRORS, ShieldedWrites
from library_api.images import record_outcomes
from proxy.warm_types import WarmClient, WarmOutcome

logger = logging.getLogger("library_api.ingest")

# Seconds between attempts to write a batch's warm outcomes the database could not take: about
# 2 minutes in all (plus SQLite's 15 s busy timeout on each attempt), then the backfill's.
RECORD_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0)


class IngestWarmer:
    def __init__(
        self,
        database: Database,
        settings: LibraryConfig,
        warm_client: WarmClient,
        *,
        durable: WarmClient | None = None,
        workers: int = 2,
        batch_size: int = 32,
        max_queued: int = 10_000,
    ) -> None:
        self.database = database
        self.settings = settings
        self.warm_client = warm_client
        self.durable = durable
        self.workers = workers
        self.batch_size = batch_size
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(max_queued)
        self.tasks: list[asyncio.Task[None]] = []
        self.writes = ShieldedWrites()

    async def submit(self, image_id: int, url: str) -> bool:
        """Queue one image; False when it could not be (it stays pending for the backfill)."""
        if self.durable is not None:
            try:
                [outcome] = await self.durable.warm([url], wait=False, tags=[str(image_id)])
            except Exception:
                logger.exception("enqueueing image %s on the warm stream failed; left for the backfill", image_id)
                return False
            if not outcome.ok:
                logger.warning("warm stream refused image %s (%s); left for the backfill", image_id, outcome.error)
            return outcome.ok
        try:
            self.queue.put_nowait((image_id, url))
        except asyncio.QueueFull:
            logger.warning("ingest warm queue full; image %s left for the backfill", image_id)
            return False
        return True

    def start(self) -> None:
        if self.durable is not None:
            return  # the stream's consumers do the work
        self.tasks = [asyncio.create_task(self.work(), name=f"ingest-warm-{n}") for n in range(self.workers)]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []
        # Writes in flight finish: a connection cancelled mid-query would never return to the pool.
        await self.writes.drain()

    async def idle(self) -> None:
        """Wait until everything queued so far has been warmed and recorded (tests, demo)."""
        await self.queue.join()

    async def work(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self.warm(batch)
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def warm(self, batch: list[tuple[int, str]]) -> None:
        sources = list(dict.fromkeys(url for _, url in batch))
        try:
            outcomes = await self.warm_client.warm(sources, wait=True)
            await self.record(batch, outcomes)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Warm path or database down: the rows stay pending and the backfill retries them.
            logger.exception("warming %d ingested images failed", len(batch))

    async def record(self, batch: list[tuple[int, str]], outcomes: list[WarmOutcome]) -> None:
        """Write the outcomes, again after each of :data:`RECORD_RETRY_DELAYS` while the database
        cannot take them (SQLite locked by another writer past its busy timeout, PostgreSQL down).

        The thumbnails are made: giving up on the write left the rows pending until a backfill
        (the picker showed them as not ready, and a backfill made them again). Waits are
        asyncio sleeps in this worker, so the event loop and the listing go on; a shutdown
        cancels the wait (the rows stay pending, as before).
        """
        for attempt, delay in enumerate((*RECORD_RETRY_DELAYS, None), start=1):
            try:
                await self.writes(record_outcomes(self.database, self.settings, batch, outcomes))
                return
            except UNAVAILABLE_ERRORS as exc:
                if delay is None:
                    raise
                logger.warning(
                    "recording %d warm outcomes failed (%s: %s), attempt %d; again in %.1f s",
                    len(batch), type(exc).__name__, exc, attempt, delay,
                )
                await asyncio.sleep(delay)
