"""Legacy rows 0002-0006 could leave unusable: ids that are NULL or repeated, impossible dates.

PostgreSQL: a product table without a primary key (``id integer``, NULLs or repeats in it)
gets a new id from the sequence for each NULL and each repeat (no row is deleted), then
the primary key (see :mod:`library_api.migrations.legacy_ids`); 0002 does the same on a
database that had not reached it.

SQLite: 0005's triggers kept any text shaped like ``YYYY-MM-DD HH:MM:SS.ffffff``, so
``2025-02-30 10:00:00.000000`` was stored as is, sorted among the dated rows, yet read as
no date, which sent cursor walks to the undated rows past every dated one below it. The
triggers now keep such text only when it is a real instant (the readers' rules: day within
its month, hour below 24, year from 1); anything else becomes what 0005 makes of it: the
normalised date or NULL. Words SQLite reads as a date (``now``) become NULL, as 0005 makes
them and as PostgreSQL's migration does. Values already stored are normalised by the same
Python reader 0005 used.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

from library_api.db import EPOCH, parse_timestamp, sqlite_text_to_blob_if_not_utf8, sqlite_timestamp_text
from library_api.migrations.legacy_ids import hash_unhashed_urls, repair_postgresql_ids

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"
CANONICAL_SHAPE = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]"
)
DATE_SHAPE = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"


def real_date(value: str) -> str:
    """SQL: ``value`` starts with a calendar date that exists (julianday rolls 02-30 over to March)."""
    return (
        f"(substr({value}, 1, 4) <> '0000' AND date(julianday(substr({value}, 1, 10))) IS substr({value}, 1, 10))"
    )


def canonical(value: str) -> str:
    """SQL, never NULL: ``value`` is the text SQLAlchemy writes, of an instant the readers can read."""
    return (
        f"(typeof({value}) = 'text' AND {value} GLOB '{CANONICAL_SHAPE}' AND {real_date(value)} "
        f"AND substr({value}, 12, 2) < '24' AND time(substr({value}, 12, 8)) IS NOT NULL)"
    )


def normalised(value: str) -> str:
    """SQL: 0005's rules in SQLite's date functions, and NULL for whatever does not come out canonical."""
    converted = f"""(CASE
    WHEN typeof({value}) IN ('integer', 'real') AND abs({value}) < 1e11
        THEN strftime('%Y-%m-%d %H:%M:%f', {value}, 'unixepoch') || '000'
    WHEN typeof({value}) IN ('integer', 'real') AND abs({value}) < 1e14
        THEN strftime('%Y-%m-%d %H:%M:%f', {value} / 1000.0, 'unixepoch') || '000'
    WHEN typeof({value}) = 'text' AND {value} GLOB '{DATE_SHAPE}' AND {real_date(value)}
        THEN strftime('%Y-%m-%d %H:%M:%f', {value}) || '000'
    ELSE NULL END)"""
    return f"(CASE WHEN {canonical(converted)} THEN {converted} ELSE NULL END)"


NEEDS_NORMALISING = f"NEW.created_at IS NOT NULL AND NOT {canonical('NEW.created_at')}"
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER pso_created_at_insert AFTER INSERT ON {TABLE} WHEN {NEEDS_NORMALISING}
        BEGIN UPDATE {TABLE} SET created_at = {normalised('NEW.created_at')} WHERE rowid = NEW.rowid; END""",
    f"""CREATE TRIGGER pso_created_at_update AFTER UPDATE OF created_at ON {TABLE} WHEN {NEEDS_NORMALISING}
        BEGIN UPDATE {TABLE} SET created_at = {normalised('NEW.created_at')} WHERE rowid = NEW.rowid; END""",
]
TRIGGER_NAMES = ("pso_created_at_insert", "pso_created_at_update")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        repair_postgresql_ids(bind)
        hash_unhashed_urls(bind)
    else:
        upgrade_sqlite(bind)


def upgrade_sqlite(bind: sa.Connection) -> None:
    raw = bind.connection.driver_connection
    assert raw is not None
    raw.create_function("thumbs_created_at", 1, sqlite_created_at, deterministic=True)
    # Open the transaction with a statement pysqlite recognises, so the DDL below is atomic with it.
    op.execute("UPDATE library_counters SET value = value WHERE 0")
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    sqlite_text_to_blob_if_not_utf8(raw, TABLE, "created_at")  # sqlite3 cannot pass such text to Python
    # Only values that are not canonical call Python: a table of clean dates is one scan.
    op.execute(
        f"UPDATE {TABLE} SET created_at = thumbs_created_at(created_at) "
        f"WHERE created_at IS NOT NULL AND NOT {canonical('created_at')}"
    )
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)


def sqlite_created_at(value: object) -> str | None:
    """0005's reading of a stored value: canonical text, or None for what cannot be read."""
    parsed = parse_timestamp(value)
    if parsed is None or parsed == EPOCH:
        return None
    return sqlite_timestamp_text(parsed)


def downgrade() -> None:
    # Ids and the primary key stay (nothing to undo without losing a row's identity); 0005's triggers return.
    if op.get_bind().dialect.name == "postgresql":
        return
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    legacy_values = importlib.import_module("library_api.migrations.versions.0005_legacy_values")
    for statement in legacy_values.SQLITE_TRIGGERS:
        op.execute(statement)
