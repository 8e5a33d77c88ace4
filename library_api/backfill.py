"""The thumbnail backfill's runner: one resumable job that warms every image still without a thumbnail.

The job table's SQL (claims, leases, batches, commits) is :mod:`library_api.job_store`; this
module decides what to warm, when to retry, and when a job is paused.

How it stays correct across restarts, crashes and several processes:

- At most one job is ``running`` (a partial unique index). A process runs it while it
  holds the job's lease (``lease_owner`` + ``lease_expires_at``, renewed by a heartbeat);
  a lease that expired (its process died) may be taken over by anyone, who continues.
- The job walks images that are not ``ready`` newest first, by keyset (created_at, id),
  in batches. For each batch it asks the warm path to generate and wait, then commits in
  ONE transaction: each image's status, per-image failures with their reason, the job's
  counters and its cursor, guarded by "this process still holds the lease". A crash
  before that commit redoes only that batch (the warm path finds the thumbnails already
  in its disk store, so nothing is generated twice); after it, nothing is redone.
- An image is marked ready only when the warm outcome says ok (the thumbnail is stored).
- A row the job cannot process never stops it: a NULL or malformed url is refused by the
  same source parser ingest uses and marked failed with the reason; when a batch's warm
  call raises but the warm path answers a probe (a source it refuses without fetching),
  the batch is split in halves down to the images that raise even alone, and those are
  marked failed with the exception (a probe that fails too is an outage). So every job ends with
  ``done + failed == total``. A plain job walks ``pending`` images; ``retry_failed`` also
  walks the ``failed`` ones again.
- If the warm path is down, the batch is retried with backoff, then the run stops with
  ``last_error`` set and the lease released; the job stays resumable and nothing is
  marked failed for an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from databases import Database
from databases.interfaces import Record

from library_api.config import LibraryConfig
from library_api.db import ShieldedWrites, create_database, is_sqlite
from library_api.job_store import (
    RECENT_FAILURES,
    TOO_LONG,
    Claim,
    JobProgress,
    JobStore,
    LeaseLost,
    progress_of,
    source_key,
    too_long,
)
from library_api.migrate import check_migrated, run_migrations
from library_api.schema import JOB_RUNNING
from library_api.sources import source_refusal
from proxy.warm_types import WarmClient, WarmOutcome

__all__ = ["Backfill", "Claim", "JobProgress", "LeaseLost", "WarmStalled", "progress_of", "run_backfill"]

logger = logging.getLogger("library_api.backfill")

DEFAULT_BATCH_SIZE = 50
MAX_BATCH_SIZE = 500
LEASE_SECONDS = 30.0
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
# A source no allow list holds (.invalid is reserved): the warm path refuses it without fetching,
# so an answer, whatever it says, proves the path is up.
PROBE_SOURCE = "http://backfill-probe.invalid/probe.jpg"

ProgressCallback = Callable[[JobProgress], None]


@dataclass(frozen=True)
class Raised:
    """One source whose warm call raised even alone."""

    source: str
    error: BaseException


def raised_outcome(raised: Raised) -> WarmOutcome:
    error = raised.error
    return WarmOutcome(
        source=raised.source, ok=False, error="warm_error", detail=f"{type(error).__name__}: {error}"[:500]
    )


class WarmStalled(Exception):
    """The warm path failed for a whole batch, every retry."""


class Backfill:
    """Starts, claims and runs backfill jobs for one process."""

    def __init__(
        self,
        database: Database,
        settings: LibraryConfig,
        warm_client: WarmClient,
        *,
        lease_seconds: float = LEASE_SECONDS,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.database = database
        self.settings = settings
        self.warm_client = warm_client
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.retry_delays = tuple(retry_delays)
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store = JobStore(database, settings, self.owner, self.lease)
        self.writes = ShieldedWrites()
        self.task: asyncio.Task[JobProgress | None] | None = None

    # Reading and claiming: the job table's (library_api.job_store)

    async def job(self, job_id: int) -> Record | None:
        return await self.store.job(job_id)

    async def latest_job(self) -> Record | None:
        return await self.store.latest_job()

    async def recent_failures(self, job_id: int, limit: int = RECENT_FAILURES) -> list[dict[str, Any]]:
        return await self.store.recent_failures(job_id, limit)

    async def claim(self, batch_size: int, *, retry_failed: bool = False) -> Claim:
        return await self.store.claim(batch_size, retry_failed=retry_failed)

    async def lease_expired(self, job: Record | None) -> bool:
        return await self.store.lease_expired(job)

    # Starting

    async def start(self, batch_size: int = DEFAULT_BATCH_SIZE, *, retry_failed: bool = False) -> Claim:
        """The endpoint's POST: the running job (started here if nobody runs it) or a new one."""
        claim = await self.writes(self.claim(batch_size, retry_failed=retry_failed))
        if claim.owned and not self.running():
            self.task = asyncio.create_task(self.run_logged(int(claim.job["id"])), name="thumbs-backfill")
        return claim

    async def run_logged(self, job_id: int) -> JobProgress | None:
        try:
            return await self.run(job_id)
        except (LeaseLost, WarmStalled) as exc:
            logger.warning("backfill job %s stopped: %s", job_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("backfill job %s stopped", job_id)
        return None

    def running(self) -> bool:
        return self.task is not None and not self.task.done()



    # Running

    async def run(self, job_id: int, on_progress: ProgressCallback | None = None) -> JobProgress:
        """Work the job (whose lease this process holds) to the end, batch by batch."""
        heartbeat = asyncio.create_task(self.heartbeat(job_id), name="thumbs-backfill-heartbeat")
        try:
            while True:
                job = await self.writes(self.job(job_id))
                if job is None or job["status"] != JOB_RUNNING or job["lease_owner"] != self.owner:
                    raise LeaseLost(f"job {job_id} is no longer held by this process")
                batch = await self.writes(self.store.next_batch(job))
                if not batch:
                    finished = await self.writes(self.store.finish(job_id))
                    progress = progress_of(finished)
                    if on_progress:
                        on_progress(progress)
                    return progress
                outcomes = await self.outcomes_for(job_id, batch)
                committed = await self.writes(self.store.commit_batch(job_id, batch, outcomes))
                if on_progress:
                    on_progress(progress_of(committed))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            # Let the next process (or this one's next start) continue at once.
            await self.writes(self.store.release(job_id))


    async def outcomes_for(self, job_id: int, batch: list[Record]) -> list[WarmOutcome]:
        """One outcome per row of the batch (by source): refused sources never reach the warm path."""
        outcomes: list[WarmOutcome] = []
        sources: list[str] = []
        for row in batch:
            refusal = TOO_LONG if too_long(row) else source_refusal(row["url"], self.settings.allowed_sources)
            if refusal is None:
                sources.append(row["url"])
            else:
                outcomes.append(WarmOutcome(source=source_key(row), ok=False, error=refusal[0], detail=refusal[1]))
        if sources:
            outcomes += await self.warm(job_id, list(dict.fromkeys(sources)))
        return outcomes

    async def warm(self, job_id: int, sources: list[str]) -> list[WarmOutcome]:
        """Outcomes for ``sources``; retries with backoff only while the warm path itself is down."""
        for attempt, delay in enumerate((*self.retry_delays, None)):
            try:
                return list(await self.warm_client.warm(sources, wait=True))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
            if await self.warm_path_answers():
                # The path is up: the batch raised because of what is in it. Split it down to the
                # images that raise even alone; those fail, with what they raised.
                results = await self.warm_split(sources)
                return [result if isinstance(result, WarmOutcome) else raised_outcome(result) for result in results]
            reason = f"warm path failed: {type(error).__name__}: {error}"
            logger.warning("backfill job %s: %s (attempt %d)", job_id, reason, attempt + 1)
            if delay is None:
                await self.writes(self.store.note_error(job_id, reason))
                raise WarmStalled(reason) from error
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def warm_split(self, sources: list[str]) -> list[WarmOutcome | Raised]:
        """Each source's outcome, or what it raised alone: a call that raises is split in halves.

        One bad image in a batch of n costs about 2 log2(n) extra calls.
        """
        try:
            return list(await self.warm_client.warm(sources, wait=True))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if len(sources) == 1:
                return [Raised(sources[0], exc)]
            middle = len(sources) // 2
            return await self.warm_split(sources[:middle]) + await self.warm_split(sources[middle:])

    async def warm_path_answers(self) -> bool:
        try:
            await self.warm_client.warm([PROBE_SOURCE], wait=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            return False
        return True





    async def heartbeat(self, job_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await self.writes(self.store.renew_lease(job_id))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A blip must not end the heartbeat (the rest of the run would go unrenewed) nor
                # surface from `run`'s cleanup as the error of a job that went on and finished.
                # If the database stays away, the run's own next query stops it.
                logger.warning("backfill job %s: renewing the lease failed: %s: %s", job_id, type(exc).__name__, exc)

    # The API process's side: resume orphaned jobs, stop cleanly

    async def supervise(self) -> None:
        """Resume a running job whose process died, once its lease has expired."""
        while True:
            try:
                if not self.running():
                    current = await self.writes(self.store.running_job())
                    # Also retries, every half lease, a run that stopped because the warm path was down.
                    if current is not None and await self.lease_expired(current):
                        await self.start(int(current["batch_size"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("backfill supervisor check failed")
            await asyncio.sleep(self.lease.total_seconds() / 2)


    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None
        await self.writes.drain()


async def run_backfill(
    settings: LibraryConfig,
    warm_client: WarmClient,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    retry_failed: bool = False,
    lease_seconds: float = LEASE_SECONDS,
    poll_seconds: float = 1.0,
    retry_delays: Sequence[float] = RETRY_DELAYS,
) -> JobProgress:
    """``thumbs backfill``: run the backfill job to the end (or follow it, if another process runs it)."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be from 1 to {MAX_BATCH_SIZE}")
    if is_sqlite(settings.database_url):
        await asyncio.to_thread(run_migrations, settings)
    database = create_database(settings)
    await database.connect()
    try:
        await check_migrated(database)  # PostgreSQL: `thumbs migrate` first, said in one line
    except BaseException:
        await database.disconnect()
        raise
    backfill = Backfill(database, settings, warm_client, lease_seconds=lease_seconds, retry_delays=retry_delays)
    try:
        while True:
            claim = await backfill.writes(backfill.claim(batch_size, retry_failed=retry_failed))
            if claim.owned:
                try:
                    return await backfill.run(int(claim.job["id"]), on_progress)
                except WarmStalled:
                    # Paused, resumable: report where it stands (last_error says why) instead of a traceback.
                    paused = await backfill.writes(backfill.job(int(claim.job["id"])))
                    assert paused is not None
                    return progress_of(paused)
            # Another live process runs it: report its progress until it ends or its lease lapses.
            job: Record | None = claim.job
            while job is not None and job["status"] == JOB_RUNNING and not await backfill.lease_expired(job):
                if on_progress:
                    on_progress(progress_of(job))
                await asyncio.sleep(poll_seconds)
                job = await backfill.writes(backfill.job(int(claim.job["id"])))
            if job is not None and job["status"] != JOB_RUNNING:
                progress = progress_of(job)
                if on_progress:
                    on_progress(progress)
                return progress
    finally:
        await backfill.writes.drain()
        await database.disconnect()
