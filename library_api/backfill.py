"""The thumbnail backfill: one resumable job that warms every image still without a thumbnail.

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
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from databases import Database
from databases.interfaces import Record

from library_api.config import LibraryConfig
from library_api.db import ShieldedWrites, as_utc, create_database, insert_for, is_sqlite, utcnow
from library_api.images import outcomes_by_source, update_for_outcome
from library_api.migrate import run_migrations
from library_api.paging import Position
from library_api.schema import FAILED, JOB_DONE, JOB_RUNNING, images, job_failures, jobs
from library_api.sources import source_refusal
from proxy.warm_types import WarmClient, WarmOutcome

logger = logging.getLogger("library_api.backfill")

DEFAULT_BATCH_SIZE = 50
MAX_BATCH_SIZE = 500
LEASE_SECONDS = 30.0
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
RECENT_FAILURES = 100
MAX_FAILURE_URL = 4096  # a failure keeps the start of a (data:) URL; the row keeps all of it

ProgressCallback = Callable[["JobProgress"], None]
# A literal, not a bound parameter, so PostgreSQL can match the partial index's predicate.
UNREADY = images.c.thumbnail_status != sa.literal_column("'ready'")
NOT_FAILED = images.c.thumbnail_status != sa.literal_column("'failed'")
# A source no allow list holds (.invalid is reserved): the warm path refuses it without fetching,
# so an answer, whatever it says, proves the path is up.
PROBE_SOURCE = "http://backfill-probe.invalid/probe.jpg"


def walked(retry_failed: bool) -> list[sa.ColumnElement[bool]]:
    """The images a job walks: not ready; and, unless retrying, not failed before either."""
    return [UNREADY] if retry_failed else [UNREADY, NOT_FAILED]


@dataclass(frozen=True)
class Raised:
    """One source whose warm call raised even alone."""

    source: str
    error: BaseException


@dataclass(frozen=True)
class JobProgress:
    id: int
    status: str
    total: int
    done: int
    failed: int
    remaining: int
    rate: float | None  # images per second in the current run
    eta_seconds: float | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    last_error: str | None
    retry_failed: bool = False

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        for key in ("created_at", "updated_at", "finished_at"):
            if values[key] is not None:
                values[key] = values[key].isoformat()
        return values


def progress_of(row: Record, now: dt.datetime | None = None) -> JobProgress:
    now = now or utcnow()
    total, done, failed = int(row["total"]), int(row["done"]), int(row["failed"])
    running = row["status"] == JOB_RUNNING
    remaining = max(total - done - failed, 0) if running else 0
    rate = eta = None
    if running and row["run_started_at"] is not None and row["run_processed"]:
        elapsed = (now - as_utc(row["run_started_at"])).total_seconds()
        if elapsed > 0:
            rate = round(int(row["run_processed"]) / elapsed, 2)
            eta = round(remaining / rate, 1) if rate else None
    return JobProgress(
        id=int(row["id"]),
        status=row["status"],
        total=total,
        done=done,
        failed=failed,
        remaining=remaining,
        rate=rate,
        eta_seconds=eta,
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
        finished_at=None if row["finished_at"] is None else as_utc(row["finished_at"]),
        last_error=row["last_error"],
        retry_failed=bool(row["retry_failed"]),
    )


def source_key(row: Record) -> str:
    """The row's url as the key of its outcome; a row without a usable url gets a unique stand-in."""
    url = row["url"]
    return url if isinstance(url, str) and url else f"<no url: image {int(row['id'])}>"


def raised_outcome(raised: Raised) -> WarmOutcome:
    error = raised.error
    return WarmOutcome(
        source=raised.source, ok=False, error="warm_error", detail=f"{type(error).__name__}: {error}"[:500]
    )


class LeaseLost(Exception):
    """Another process took the job over (this one stalled past its lease)."""


class WarmStalled(Exception):
    """The warm path failed for a whole batch, every retry."""


@dataclass(frozen=True)
class Claim:
    job: Record
    created: bool
    owned: bool


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
        self.writes = ShieldedWrites()
        self.task: asyncio.Task[JobProgress | None] | None = None

    # Reading

    async def job(self, job_id: int) -> Record | None:
        return await self.database.fetch_one(sa.select(jobs).where(jobs.c.id == job_id))

    async def latest_job(self) -> Record | None:
        return await self.database.fetch_one(sa.select(jobs).order_by(jobs.c.id.desc()).limit(1))

    async def recent_failures(self, job_id: int, limit: int = RECENT_FAILURES) -> list[dict[str, Any]]:
        rows = await self.database.fetch_all(
            sa.select(job_failures)
            .where(job_failures.c.job_id == job_id)
            .order_by(job_failures.c.created_at.desc(), job_failures.c.image_id.desc())
            .limit(limit)
        )
        return [
            {"image_id": int(row["image_id"]), "url": row["url"], "error": row["error"], "detail": row["detail"]}
            for row in rows
        ]

    # Starting and claiming

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

    async def claim(self, batch_size: int, *, retry_failed: bool = False) -> Claim:
        for _ in range(5):
            now = utcnow()
            current = await self.database.fetch_one(sa.select(jobs).where(jobs.c.status == JOB_RUNNING))
            if current is None:
                created = await self.create_job(batch_size, now, retry_failed=retry_failed)
                if created is not None:
                    return Claim(created, created=True, owned=True)
                continue  # another process created one first: claim that instead
            if current["lease_owner"] == self.owner:
                return Claim(current, created=False, owned=True)
            expires = current["lease_expires_at"]
            if expires is not None and as_utc(expires) > now:
                return Claim(current, created=False, owned=False)
            taken = await self.database.fetch_one(
                sa.update(jobs)
                .where(jobs.c.id == current["id"], jobs.c.status == JOB_RUNNING)
                .where(sa.or_(jobs.c.lease_expires_at.is_(None), jobs.c.lease_expires_at <= now))
                .values(
                    lease_owner=self.owner,
                    lease_expires_at=now + self.lease,
                    run_started_at=now,
                    run_processed=0,
                    updated_at=now,
                )
                .returning(*jobs.c)
            )
            if taken is not None:
                logger.info("backfill job %s taken over by %s", taken["id"], self.owner)
                return Claim(taken, created=False, owned=True)
        raise RuntimeError("could not claim or create a backfill job (heavy contention)")

    async def create_job(self, batch_size: int, now: dt.datetime, *, retry_failed: bool = False) -> Record | None:
        total = await self.database.fetch_val(
            sa.select(sa.func.count()).select_from(images).where(*walked(retry_failed))
        )
        insert = insert_for(self.database)(jobs).values(
            status=JOB_RUNNING,
            created_at=now,
            updated_at=now,
            batch_size=batch_size,
            total=int(total or 0),
            done=0,
            failed=0,
            lease_owner=self.owner,
            lease_expires_at=now + self.lease,
            run_started_at=now,
            run_processed=0,
            retry_failed=retry_failed,
        )
        # The partial unique index refuses a second running job; that is "someone was first".
        return await self.database.fetch_one(insert.on_conflict_do_nothing().returning(*jobs.c))

    # Running

    async def run(self, job_id: int, on_progress: ProgressCallback | None = None) -> JobProgress:
        """Work the job (whose lease this process holds) to the end, batch by batch."""
        heartbeat = asyncio.create_task(self.heartbeat(job_id), name="thumbs-backfill-heartbeat")
        try:
            while True:
                job = await self.writes(self.job(job_id))
                if job is None or job["status"] != JOB_RUNNING or job["lease_owner"] != self.owner:
                    raise LeaseLost(f"job {job_id} is no longer held by this process")
                batch = await self.writes(self.next_batch(job))
                if not batch:
                    finished = await self.writes(self.finish(job_id))
                    progress = progress_of(finished)
                    if on_progress:
                        on_progress(progress)
                    return progress
                outcomes = await self.outcomes_for(job_id, batch)
                committed = await self.writes(self.commit_batch(job_id, batch, outcomes))
                if on_progress:
                    on_progress(progress_of(committed))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            # Let the next process (or this one's next start) continue at once.
            await self.writes(self.release(job_id))

    async def next_batch(self, job: Record) -> list[Record]:
        """The next images below the job's cursor, in listing order: dated ones, then undated by id."""
        limit = int(job["batch_size"])
        conditions = walked(bool(job["retry_failed"]))
        position = None
        if job["cursor_id"] is not None:
            created_at = job["cursor_created_at"]
            position = Position(None if created_at is None else as_utc(created_at), int(job["cursor_id"]))
        rows: list[Record] = []
        if position is None or position.created_at is not None:
            query = (
                sa.select(images.c.id, images.c.url, images.c.created_at)
                .where(*conditions, images.c.created_at.is_not(None))
                .order_by(images.c.created_at.desc(), images.c.id.desc())
                .limit(limit)
            )
            if position is not None:
                query = query.where(
                    sa.tuple_(images.c.created_at, images.c.id)
                    < sa.tuple_(
                        sa.literal(position.created_at, images.c.created_at.type),
                        sa.literal(position.id, images.c.id.type),
                    )
                )
            rows = list(await self.database.fetch_all(query))
        if len(rows) < limit:
            query = (
                sa.select(images.c.id, images.c.url, images.c.created_at)
                .where(*conditions, images.c.created_at.is_(None))
                .order_by(images.c.id.desc())
                .limit(limit - len(rows))
            )
            if position is not None and position.created_at is None:
                query = query.where(images.c.id < position.id)
            rows += await self.database.fetch_all(query)
        return rows

    async def outcomes_for(self, job_id: int, batch: list[Record]) -> list[WarmOutcome]:
        """One outcome per row of the batch (by source): refused sources never reach the warm path."""
        outcomes: list[WarmOutcome] = []
        sources: list[str] = []
        for row in batch:
            refusal = source_refusal(row["url"], self.settings.allowed_sources)
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
                await self.writes(self.note_error(job_id, reason))
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

    async def commit_batch(self, job_id: int, batch: list[Record], outcomes: list[WarmOutcome]) -> Record:
        by_source = outcomes_by_source(outcomes)
        ok = [row for row in batch if (outcome := by_source.get(source_key(row))) is not None and outcome.ok]
        now = utcnow()
        last = batch[-1]
        async with self.database.transaction():
            job = await self.database.fetch_one(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == self.owner, jobs.c.status == JOB_RUNNING)
                .values(
                    done=jobs.c.done + len(ok),
                    failed=jobs.c.failed + len(batch) - len(ok),
                    run_processed=jobs.c.run_processed + len(batch),
                    cursor_created_at=None if last["created_at"] is None else as_utc(last["created_at"]),
                    cursor_id=int(last["id"]),
                    updated_at=now,
                    lease_expires_at=now + self.lease,
                    last_error=None,
                )
                .returning(*jobs.c)
            )
            if job is None:
                raise LeaseLost(f"job {job_id} was taken over; this batch is left to the new owner")
            failures = []
            for row in batch:
                outcome = by_source.get(source_key(row))
                if isinstance(row["url"], str):
                    update = update_for_outcome(int(row["id"]), row["url"], outcome, self.settings)
                else:
                    assert outcome is not None and not outcome.ok
                    update = (
                        sa.update(images)
                        .where(images.c.id == int(row["id"]))
                        .values(thumbnail_status=FAILED, thumbnail_error=f"{outcome.error}: {outcome.detail}")
                    )
                await self.database.execute(update)
                if outcome is None or not outcome.ok:
                    failures.append(
                        {
                            "job_id": job_id,
                            "image_id": int(row["id"]),
                            "url": source_key(row)[:MAX_FAILURE_URL],
                            "error": (outcome.error if outcome else None) or "warm_failed",
                            "detail": outcome.detail if outcome else "the warm path returned no outcome",
                            "created_at": now,
                        }
                    )
            for failure in failures:
                await self.database.execute(
                    insert_for(self.database)(job_failures).values(**failure).on_conflict_do_nothing()
                )
        return job

    async def finish(self, job_id: int) -> Record:
        now = utcnow()
        row = await self.database.fetch_one(
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_owner == self.owner, jobs.c.status == JOB_RUNNING)
            .values(status=JOB_DONE, finished_at=now, updated_at=now, lease_owner=None, lease_expires_at=None)
            .returning(*jobs.c)
        )
        if row is None:
            raise LeaseLost(f"job {job_id} was taken over before it finished")
        logger.info("backfill job %s done: %s ready, %s failed", job_id, row["done"], row["failed"])
        return row

    async def release(self, job_id: int) -> None:
        await self.database.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_owner == self.owner, jobs.c.status == JOB_RUNNING)
            .values(lease_owner=None, lease_expires_at=None)
        )

    async def note_error(self, job_id: int, reason: str) -> None:
        await self.database.execute(
            sa.update(jobs).where(jobs.c.id == job_id).values(last_error=reason[:1000], updated_at=utcnow())
        )

    async def heartbeat(self, job_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            now = utcnow()
            await self.writes(
                self.database.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.lease_owner == self.owner)
                    .values(lease_expires_at=now + self.lease)
                )
            )

    # The API process's side: resume orphaned jobs, stop cleanly

    async def supervise(self) -> None:
        """Resume a running job whose process died, once its lease has expired."""
        while True:
            try:
                if not self.running():
                    current = await self.writes(
                        self.database.fetch_one(sa.select(jobs).where(jobs.c.status == JOB_RUNNING))
                    )
                    # Also retries, every half lease, a run that stopped because the warm path was down.
                    if current is not None and await self.lease_expired(current):
                        await self.start(int(current["batch_size"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("backfill supervisor check failed")
            await asyncio.sleep(self.lease.total_seconds() / 2)

    async def lease_expired(self, job: Record | None) -> bool:
        return job is not None and (job["lease_expires_at"] is None or as_utc(job["lease_expires_at"]) <= utcnow())

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
