"""Tables the API reads and writes, as SQLAlchemy Core metadata.

``pipeline_step_outputs`` is the product's existing table; the migrations add the
columns below to it in place, so legacy rows are listed without being copied.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from library_api.db import parse_timestamp

# Thumbnail states of an image.
PENDING = "pending"
READY = "ready"
FAILED = "failed"

# States of a backfill job.
JOB_RUNNING = "running"
JOB_DONE = "done"

IMAGES_COUNTER = "images"

metadata = sa.MetaData()


class LenientDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp column that may hold legacy junk: reading it yields None, never an error.

    SQLite stores whatever a legacy writer put there (text, integers, floats, bytes);
    SQLAlchemy's own SQLite reader raises on those, which would turn a listing into a 500.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Any:
        return parse_timestamp


# BIGINT on PostgreSQL, but SQLite only aliases the rowid for exactly "INTEGER PRIMARY KEY".
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

images = sa.Table(
    "pipeline_step_outputs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    # Both may be NULL in legacy rows: such rows are kept (see migration 0005).
    sa.Column("url", sa.Text),
    sa.Column("created_at", LenientDateTime()),
    sa.Column("pipeline_id", sa.Text),
    sa.Column("step", sa.Text),
    # Added by migration 0002:
    sa.Column("thumbnail_url", sa.Text),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("color", sa.String(7)),
    sa.Column("thumbnail_status", sa.String(16), nullable=False, server_default=PENDING),
    sa.Column("thumbnail_error", sa.Text),
    # sha256 of the url; NULL for legacy duplicates, so a unique index dedupes new ingests.
    sa.Column("url_hash", sa.String(64)),
)

counters = sa.Table(
    "library_counters",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

jobs = sa.Table(
    "thumbnail_jobs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("batch_size", sa.Integer, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("done", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failed", sa.BigInteger, nullable=False, server_default="0"),
    # Keyset position: every unready image at or above it has been handled by this job.
    sa.Column("cursor_created_at", sa.DateTime(timezone=True)),
    sa.Column("cursor_id", sa.BigInteger),
    # Which process runs the job, until when; an expired lease may be taken over.
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    # Current run segment, for the rate.
    sa.Column("run_started_at", sa.DateTime(timezone=True)),
    sa.Column("run_processed", sa.BigInteger, nullable=False, server_default="0"),
    # Why the last run stopped early (the warm path was down), until a batch succeeds again.
    sa.Column("last_error", sa.Text),
    # Added by 0006: also walk images that failed before (a plain job walks only pending ones).
    sa.Column("retry_failed", sa.Boolean, nullable=False, server_default=sa.false()),
)

job_failures = sa.Table(
    "thumbnail_job_failures",
    metadata,
    sa.Column("job_id", sa.BigInteger, primary_key=True),
    sa.Column("image_id", sa.BigInteger, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("error", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
