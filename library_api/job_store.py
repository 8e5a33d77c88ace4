"""The backfill's job table: jobs, their leases and per-image failures, in SQL only.

Every write that moves a job on is guarded by "this process still holds the lease"
(``lease_owner``); a process whose lease was taken over gets :class:`LeaseLost` instead of
writing. The runner (:mod:`library_api.backfill`) decides what to warm and when.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from databases import Database
from databases.interfaces import Record

from library_api.config import LibraryConfig
from library_api.db import as_utc, insert_for, utcnow
from library_api.images import (
    STORED_CREATED_AT,
    Bound,
    ByteLength,
    below,
    failure_reason,
    outcomes_by_source,
    position_of,
    resolve_position,
    update_for_outcome,
)
from library_api.paging import Position
from library_api.schema import FAILED, JOB_DONE, JOB_RUNNING, images, job_failures, jobs
from library_api.sources import MAX_URL_LENGTH
from proxy.warm_types import WarmOutcome

logger = logging.getLogger("library_api.backfill")

RECENT_FAILURES = 100
MAX_FAILURE_URL = 4096  # a failure keeps the start of a (data:) URL; the row keeps all of it

# A literal, not a bound parameter, so PostgreSQL can match the partial index's predicate.
UNREADY = images.c.thumbnail_status != sa.literal_column("'ready'")
NOT_FAILED = images.c.thumbnail_status != sa.literal_column("'failed'")


def walked(retry_failed: bool) -> list[sa.ColumnElement[bool]]:
    """The images a job walks: not ready; and, unless retrying, not failed before either."""
    return [UNREADY] if retry_failed else [UNREADY, NOT_FAILED]


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


# A url longer than any source (proxy.urls.MAX_URL_LENGTH, in bytes here: a longer one is either
# too long or not ASCII, refused either way) is not read into the batch: NULL, with its size.
# A batch of 50 rows with 10 MB urls read 500 MB into this process (peak RSS 92 -> 590 MB).
URL_BYTES = ByteLength(images.c.url)
BATCH_URL = sa.case((URL_BYTES > sa.literal_column(str(MAX_URL_LENGTH)), sa.null()), else_=images.c.url)
TOO_LONG = ("invalid_url", f"url is longer than {MAX_URL_LENGTH} bytes")


def too_long(row: Record) -> bool:
    """A url next_batch did not read: longer than any source may be."""
    return row["url"] is None and row["url_bytes"] is not None and int(row["url_bytes"]) > MAX_URL_LENGTH


def source_key(row: Record) -> str:
    """The row's url as the key of its outcome; a row without a usable url gets a unique stand-in."""
    url = row["url"]
    if too_long(row):
        return f"<url of {int(row['url_bytes'])} bytes: image {int(row['id'])}>"
    return url if isinstance(url, str) and url else f"<no url: image {int(row['id'])}>"


class LeaseLost(Exception):
    """Another process took the job over (this one stalled past its lease)."""


@dataclass(frozen=True)
class Claim:
    job: Record
    created: bool
    owned: bool


class JobStore:
    """The job table as one process sees it: ``owner`` names this process in leases."""

    def __init__(self, database: Database, settings: LibraryConfig, owner: str, lease: dt.timedelta) -> None:
        self.database = database
        self.settings = settings
        self.owner = owner
        self.lease = lease

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

    async def next_batch(self, job: Record) -> list[Record]:
        """The next images below the job's cursor, in listing order: dated ones, then undated by id."""
        limit = int(job["batch_size"])
        conditions = walked(bool(job["retry_failed"]))
        dated_bound: Bound = True
        undated_bound: Bound = True
        if job["cursor_id"] is not None:
            created_at = job["cursor_created_at"]
            # The same resolution as a listing cursor: a junk date the triggers missed is not "undated".
            position = await resolve_position(
                self.database, Position(None if created_at is None else as_utc(created_at), int(job["cursor_id"]))
            )
            dated_bound, undated_bound = below(position)
        columns = (images.c.id, BATCH_URL.label("url"), URL_BYTES.label("url_bytes"), images.c.created_at,
                   STORED_CREATED_AT)
        rows: list[Record] = []
        if dated_bound is not False:
            query = (
                sa.select(*columns)
                .where(*conditions, images.c.created_at.is_not(None))
                .order_by(images.c.created_at.desc(), images.c.id.desc())
                .limit(limit)
            )
            if dated_bound is not True:
                query = query.where(dated_bound)
            rows = list(await self.database.fetch_all(query))
        if len(rows) < limit and undated_bound is not False:
            query = (
                sa.select(*columns)
                .where(*conditions, images.c.created_at.is_(None))
                .order_by(images.c.id.desc())
                .limit(limit - len(rows))
            )
            if undated_bound is not True:
                query = query.where(undated_bound)
            rows += await self.database.fetch_all(query)
        return rows

    async def commit_batch(self, job_id: int, batch: list[Record], outcomes: list[WarmOutcome]) -> Record:
        by_source = outcomes_by_source(outcomes)
        ok = [row for row in batch if (outcome := by_source.get(source_key(row))) is not None and outcome.ok]
        now = utcnow()
        last = position_of(batch[-1])
        async with self.database.transaction():
            job = await self.database.fetch_one(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == self.owner, jobs.c.status == JOB_RUNNING)
                .values(
                    done=jobs.c.done + len(ok),
                    failed=jobs.c.failed + len(batch) - len(ok),
                    run_processed=jobs.c.run_processed + len(batch),
                    cursor_created_at=last.created_at,
                    cursor_id=last.id,
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
                    reason, detail = failure_reason(outcome)
                    update = (
                        sa.update(images)
                        .where(images.c.id == int(row["id"]))
                        .values(thumbnail_status=FAILED, thumbnail_error=f"{reason}: {detail}" if detail else reason)
                    )
                await self.database.execute(update)
                if outcome is None or not outcome.ok:
                    if outcome is None:
                        reason, detail = "warm_failed", "the warm path returned no outcome"
                    else:
                        reason, detail = failure_reason(outcome)
                    failures.append(
                        {
                            "job_id": job_id,
                            "image_id": int(row["id"]),
                            "url": source_key(row)[:MAX_FAILURE_URL],
                            "error": reason,
                            "detail": detail,
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

    async def lease_expired(self, job: Record | None) -> bool:
        return job is not None and (job["lease_expires_at"] is None or as_utc(job["lease_expires_at"]) <= utcnow())

    async def running_job(self) -> Record | None:
        return await self.database.fetch_one(sa.select(jobs).where(jobs.c.status == JOB_RUNNING))

    async def renew_lease(self, job_id: int) -> None:
        now = utcnow()
        await self.database.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_owner == self.owner)
            .values(lease_expires_at=now + self.lease)
        )
