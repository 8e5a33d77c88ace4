"""Thumbnail columns and the listing/backfill indexes on ``pipeline_step_outputs``.

Adds columns in place (nullable or with a constant default: no row is rewritten on
PostgreSQL 11+), then: timestamps to UTC ``timestamptz``, a hash of each first-seen URL
for de-duplicating ingests (later duplicates among legacy rows keep NULL and stay listed),
and three indexes. Each step checks what exists, so a half-applied run can be repeated.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import op

from library_api.db import sqlite_text_to_blob_if_not_utf8
from library_api.migrations.legacy_ids import repair_postgresql_ids, repair_sqlite_ids

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"
NEW_COLUMNS: list[sa.Column[Any]] = [
    sa.Column("thumbnail_url", sa.Text),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("color", sa.String(7)),
    sa.Column("thumbnail_status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("thumbnail_error", sa.Text),
    sa.Column("url_hash", sa.String(64)),
]
SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy writes, so text order is time order


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = {column["name"]: column for column in inspector.get_columns(TABLE)}
    for column in NEW_COLUMNS:
        if column.name not in existing:
            op.add_column(TABLE, column)

    if bind.dialect.name == "postgresql":
        # Before the url hashes below pick "the first row of each url" by id: ids must be unique.
        repair_postgresql_ids(bind)
        upgrade_postgresql(existing["created_at"]["type"])
    else:
        upgrade_sqlite(bind)

    op.execute(
        f"UPDATE {TABLE} SET url_hash = {url_hash_sql(bind)} "
        f"WHERE url_hash IS NULL AND id IN (SELECT min(id) FROM {TABLE} GROUP BY url)"
    )

    indexes = {index["name"] for index in sa.inspect(bind).get_indexes(TABLE)}
    unready = sa.text("thumbnail_status <> 'ready'")
    if "ix_pso_created_id" not in indexes:
        # Newest first with an id tie-break: an index scan, backwards, at any depth.
        op.create_index("ix_pso_created_id", TABLE, ["created_at", "id"])
    if "ix_pso_unready" not in indexes:
        # Only images still needing a thumbnail: the backfill walks this, newest first.
        op.create_index("ix_pso_unready", TABLE, ["created_at", "id"], postgresql_where=unready, sqlite_where=unready)
    if "ux_pso_url_hash" not in indexes:
        op.create_index("ux_pso_url_hash", TABLE, ["url_hash"], unique=True)


def upgrade_postgresql(created_at_type: sa.types.TypeEngine) -> None:
    if not isinstance(created_at_type, sa.DateTime):
        # Dates kept as text or numbers (epoch ms): 0005 reads and converts them.
        return
    if not created_at_type.timezone:
        # Legacy naive timestamps were written in UTC.
        op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN created_at TYPE timestamptz USING created_at AT TIME ZONE 'UTC'")
    op.execute(f"UPDATE {TABLE} SET created_at = 'epoch' WHERE created_at IS NULL")
    op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN created_at SET NOT NULL")
    op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN created_at SET DEFAULT now()")


def upgrade_sqlite(bind: sa.Connection) -> None:
    raw = bind.connection.driver_connection
    assert raw is not None
    repair_sqlite_ids(raw)  # before the url hashes pick "the first row of each url" by id
    for column in ("url", "created_at"):  # read by Python functions below
        sqlite_text_to_blob_if_not_utf8(raw, TABLE, column)
    raw.create_function("thumbs_sha256", 1, sha256_hex, deterministic=True)
    raw.create_function("thumbs_timestamp", 1, normalize_timestamp, deterministic=True)
    # Legacy text timestamps may be ISO with "T", "Z" or offsets: one UTC format keeps order.
    op.execute(
        f"UPDATE {TABLE} SET created_at = thumbs_timestamp(created_at) "
        f"WHERE created_at IS NOT thumbs_timestamp(created_at)"
    )


def url_hash_sql(bind: sa.Connection) -> str:
    if bind.dialect.name == "postgresql":
        return "encode(sha256(convert_to(url, 'UTF8')), 'hex')"
    return "thumbs_sha256(url)"


def sha256_hex(value: object) -> str | None:
    # A legacy SQLite url may be any value: a raise here would abort the whole migration.
    # Text hashes as ingest's url_hash does; other kinds are kept apart (1 and '1' are two urls to SQLite).
    if value is None:
        return None
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
    elif isinstance(value, bytes | memoryview):
        data = b"\x00blob:" + bytes(value)
    else:
        data = f"\x00number:{value!r}".encode()
    return hashlib.sha256(data).hexdigest()


def normalize_timestamp(value: object) -> object:
    if value is None:
        return dt.datetime(1970, 1, 1).strftime(SQLITE_TIMESTAMP)
    try:
        if isinstance(value, int | float):
            parsed = dt.datetime.fromtimestamp(value, dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(str(value))
    except (ValueError, OverflowError, OSError):
        return value  # unparseable: kept exactly as it was
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed.strftime(SQLITE_TIMESTAMP)


def downgrade() -> None:
    for name in ("ux_pso_url_hash", "ix_pso_unready", "ix_pso_created_id"):
        op.drop_index(name, table_name=TABLE)
    for column in reversed(NEW_COLUMNS):
        op.drop_column(TABLE, column.name)
