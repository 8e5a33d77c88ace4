"""Reading and writing images: the page query, the exact total, ingest, warm outcomes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from databases import Database
from databases.interfaces import Record

from library_api.db import as_utc, insert_for, utcnow
from library_api.paging import PageRequest, Position
from library_api.schema import FAILED, IMAGES_COUNTER, PENDING, READY, counters, images
from proxy.urls import thumbnail_url
from proxy.warm_types import WarmOutcome
from thumbs.settings import Settings

LISTED = [
    images.c.id,
    images.c.url,
    images.c.created_at,
    images.c.width,
    images.c.height,
    images.c.color,
    images.c.pipeline_id,
    images.c.step,
    images.c.thumbnail_status,
]
NEWEST_FIRST = (images.c.created_at.desc(), images.c.id.desc())


@dataclass(frozen=True)
class Page:
    rows: list[Record]
    has_more: bool


def below(position: Position) -> sa.ColumnElement[bool]:
    """Strictly after ``position`` in newest-first order: one index range, at any depth."""
    return sa.tuple_(images.c.created_at, images.c.id) < sa.tuple_(
        sa.literal(position.created_at, images.c.created_at.type), sa.literal(position.id, images.c.id.type)
    )


async def fetch_page(database: Database, request: PageRequest) -> Page:
    query = sa.select(*LISTED).order_by(*NEWEST_FIRST).limit(request.limit + 1)
    if request.after is not None:
        query = query.where(below(request.after))
    elif request.offset:
        query = query.offset(request.offset)
    rows = await database.fetch_all(query)
    return Page(rows=rows[: request.limit], has_more=len(rows) > request.limit)


async def fetch_total(database: Database) -> int:
    """Kept exact by triggers (migration 0003): one primary-key lookup, never a COUNT(*)."""
    value = await database.fetch_val(sa.select(counters.c.value).where(counters.c.name == IMAGES_COUNTER))
    return int(value or 0)


def position_of(row: Record) -> Position:
    return Position(as_utc(row["created_at"]), int(row["id"]))


def image_json(row: Record, settings: Settings) -> dict[str, Any]:
    # The thumbnail URL is computed now, so key rotation and a new base URL need no data migration.
    pipeline_id, step = row["pipeline_id"], row["step"]
    return {
        "id": int(row["id"]),
        "url": row["url"],
        "thumbnail_url": thumbnail_url(row["url"], settings.secret, settings.public_base_url),
        "created_at": as_utc(row["created_at"]).isoformat(),
        "width": row["width"],
        "height": row["height"],
        "color": row["color"],
        "pipeline_id": None if pipeline_id is None else str(pipeline_id),
        "step": None if step is None else str(step),
        "thumbnail_status": row["thumbnail_status"],
    }


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


async def insert_image(
    database: Database, *, url: str, pipeline_id: str, step: str, width: int | None, height: int | None
) -> tuple[Record, bool]:
    """Store one image unless its URL is already stored; returns (row, created)."""
    digest = url_hash(url)
    insert = insert_for(database)(images).values(
        url=url,
        url_hash=digest,
        created_at=utcnow(),
        pipeline_id=pipeline_id,
        step=step,
        width=width,
        height=height,
        thumbnail_status=PENDING,
    )
    row = await database.fetch_one(insert.on_conflict_do_nothing(index_elements=[images.c.url_hash]).returning(*LISTED))
    if row is not None:
        return row, True
    existing = await database.fetch_one(sa.select(*LISTED).where(images.c.url_hash == digest))
    if existing is None:  # deleted between the two statements: store it after all
        return await insert_image(database, url=url, pipeline_id=pipeline_id, step=step, width=width, height=height)
    return existing, False


def outcome_values(outcome: WarmOutcome | None, url: str, settings: Settings) -> dict[str, Any]:
    """Column updates for one warm outcome; a missing outcome is a failure too."""
    if outcome is None:
        return {"thumbnail_status": FAILED, "thumbnail_error": "warm_missing: no outcome for this source"}
    if not outcome.ok:
        reason = outcome.error or "warm_failed"
        return {
            "thumbnail_status": FAILED,
            "thumbnail_error": f"{reason}: {outcome.detail}" if outcome.detail else reason,
        }
    values: dict[str, Any] = {
        "thumbnail_status": READY,
        "thumbnail_error": None,
        "thumbnail_url": thumbnail_url(url, settings.secret, settings.public_base_url),
    }
    # Sizes and colour only overwrite what the outcome actually knows.
    for column in ("width", "height", "color"):
        if getattr(outcome, column) is not None:
            values[column] = getattr(outcome, column)
    return values


def outcomes_by_source(outcomes: Sequence[WarmOutcome]) -> dict[str, WarmOutcome]:
    return {outcome.source: outcome for outcome in outcomes}


async def record_outcomes(
    database: Database, settings: Settings, targets: Sequence[tuple[int, str]], outcomes: Sequence[WarmOutcome]
) -> None:
    """Write each image's warm outcome (ingest path; the backfill writes its own in a transaction)."""
    by_source = outcomes_by_source(outcomes)
    async with database.transaction():
        for image_id, url in targets:
            await database.execute(update_for_outcome(image_id, url, by_source.get(url), settings))


def update_for_outcome(image_id: int, url: str, outcome: WarmOutcome | None, settings: Settings) -> sa.Update:
    values = outcome_values(outcome, url, settings)
    update = sa.update(images).where(images.c.id == image_id).values(**values)
    if values["thumbnail_status"] == FAILED:
        # A late failure never un-does a thumbnail another path already made.
        update = update.where(images.c.thumbnail_status != READY)
    return update
