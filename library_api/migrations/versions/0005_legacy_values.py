"""Legacy values the listing must survive: created_at normalised or NULL, rows without a url marked.

``created_at`` as the legacy writers left it (0002 kept what it could not read "as it
was"): ISO 8601 variants, SQL timestamps, epoch seconds / milliseconds / micro- and
nanoseconds as numbers or text, floats, bytes. Each becomes a proper UTC timestamp;
what cannot be read (``not a date``, infinity, out-of-range years, the epoch 0 that 0002
wrote for a NULL date) becomes NULL. The listing puts NULL dates after every dated image,
newest id first. Later writes are normalised the same way by a trigger, so junk a
legacy writer inserts after this migration never reaches a reader either.

Rows without a url are kept, marked ``failed`` with ``thumbnail_error`` ``no_url: ...``, and
not listed (a partial index counts them, so ``total`` stays exact).

Every step checks what exists, so it can be repeated.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

from library_api.db import EPOCH, parse_timestamp, sqlite_text_to_blob_if_not_utf8

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"
NO_URL = "no_url: the row has no url; nothing to make a thumbnail from"

# Python's datetime (the readers) spans years 1-9999; keep a day of margin for time zones.
PG_READABLE = "created_at > '0001-01-02 00:00:00+00' AND created_at < '9999-12-30 00:00:00+00'"

PG_PARSE = r"""
CREATE OR REPLACE FUNCTION library_parse_created_at(value text) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    number double precision;
    parsed timestamptz;
BEGIN
    value := btrim(value);
    IF value IS NULL OR value = '' THEN
        RETURN NULL;
    END IF;
    IF value ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$' THEN
        number := value::double precision;
        IF abs(number) < 1e11 THEN parsed := to_timestamp(number);          -- seconds
        ELSIF abs(number) < 1e14 THEN parsed := to_timestamp(number / 1e3);  -- JavaScript milliseconds
        ELSIF abs(number) < 1e17 THEN parsed := to_timestamp(number / 1e6);
        ELSIF abs(number) < 1e20 THEN parsed := to_timestamp(number / 1e9);
        ELSE RETURN NULL;
        END IF;
    ELSIF lower(value) IN ('now', 'today', 'tomorrow', 'yesterday', 'allballs', 'epoch', 'infinity', '-infinity') THEN
        RETURN NULL;  -- words PostgreSQL would read as a date, none of them a legacy image's date
    ELSE
        parsed := value::timestamptz;
    END IF;
    IF parsed IS NULL OR NOT isfinite(parsed) OR parsed <= '0001-01-02 00:00:00+00'
       OR parsed >= '9999-12-30 00:00:00+00' OR parsed = 'epoch' THEN
        RETURN NULL;
    END IF;
    RETURN parsed;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$
"""

PG_TRIGGER = [
    """
    CREATE OR REPLACE FUNCTION library_created_at_readable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.created_at := NULL;
        RETURN NEW;
    END $$
    """,
    f"DROP TRIGGER IF EXISTS pso_created_at_readable ON {TABLE}",
    # WHEN is evaluated without calling the function: readable dates cost nothing.
    f"""CREATE TRIGGER pso_created_at_readable BEFORE INSERT OR UPDATE OF created_at ON {TABLE}
        FOR EACH ROW WHEN (NEW.created_at IS NOT NULL AND NOT ({PG_READABLE.replace("created_at", "NEW.created_at")}))
        EXECUTE FUNCTION library_created_at_readable()""",
]

# What SQLAlchemy writes on SQLite: fixed width, so text order is time order.
SQLITE_CANONICAL = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]"
)
# Later writes by other programs cannot call Python: the same rules in SQLite's own date functions.
SQLITE_NORMALISED = """CASE
    WHEN typeof(NEW.created_at) IN ('integer', 'real') AND abs(NEW.created_at) < 1e11
        THEN strftime('%Y-%m-%d %H:%M:%f', NEW.created_at, 'unixepoch') || '000'
    WHEN typeof(NEW.created_at) IN ('integer', 'real') AND abs(NEW.created_at) < 1e14
        THEN strftime('%Y-%m-%d %H:%M:%f', NEW.created_at / 1000.0, 'unixepoch') || '000'
    WHEN typeof(NEW.created_at) = 'text' THEN strftime('%Y-%m-%d %H:%M:%f', NEW.created_at) || '000'
    ELSE NULL END"""
SQLITE_NOT_CANONICAL = (
    f"NEW.created_at IS NOT NULL AND NOT (typeof(NEW.created_at) = 'text' AND NEW.created_at GLOB '{SQLITE_CANONICAL}')"
)
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS pso_created_at_insert AFTER INSERT ON {TABLE} WHEN {SQLITE_NOT_CANONICAL}
        BEGIN UPDATE {TABLE} SET created_at = {SQLITE_NORMALISED} WHERE rowid = NEW.rowid; END""",
    f"""CREATE TRIGGER IF NOT EXISTS pso_created_at_update AFTER UPDATE OF created_at ON {TABLE}
        WHEN {SQLITE_NOT_CANONICAL}
        BEGIN UPDATE {TABLE} SET created_at = {SQLITE_NORMALISED} WHERE rowid = NEW.rowid; END""",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        upgrade_postgresql(bind)
    else:
        upgrade_sqlite(bind)
    op.execute(
        sa.text(
            f"UPDATE {TABLE} SET thumbnail_status = 'failed', thumbnail_error = :reason "
            "WHERE url IS NULL AND thumbnail_status <> 'failed'"
        ).bindparams(reason=NO_URL)
    )
    indexes = {index["name"] for index in sa.inspect(bind).get_indexes(TABLE)}
    if "ix_pso_no_url" not in indexes:
        # Makes "how many rows have no url" (subtracted from total) a lookup of just those rows.
        no_url = sa.text("url IS NULL")
        op.create_index("ix_pso_no_url", TABLE, ["id"], postgresql_where=no_url, sqlite_where=no_url)


def upgrade_postgresql(bind: sa.Connection) -> None:
    op.execute("SET LOCAL timezone = 'UTC'")  # naive text is UTC, as 0002 took naive timestamps
    columns = {column["name"]: column for column in sa.inspect(bind).get_columns(TABLE)}
    created_at = columns["created_at"]
    op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN created_at DROP NOT NULL")
    if not (isinstance(created_at["type"], sa.DateTime) and created_at["type"].timezone):
        # Text, numbers or anything else: read each value (the table is rewritten once).
        op.execute(PG_PARSE)
        op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN created_at DROP DEFAULT")
        op.execute(
            f"ALTER TABLE {TABLE} ALTER COLUMN created_at TYPE timestamptz "
            "USING library_parse_created_at(created_at::text)"
        )
        op.execute("DROP FUNCTION library_parse_created_at(text)")
    op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN created_at SET DEFAULT now()")
    op.execute(f"UPDATE {TABLE} SET created_at = NULL WHERE created_at = 'epoch' OR NOT ({PG_READABLE})")
    for statement in PG_TRIGGER:
        op.execute(statement)


def upgrade_sqlite(bind: sa.Connection) -> None:
    raw = bind.connection.driver_connection
    assert raw is not None
    raw.create_function("thumbs_created_at", 1, sqlite_created_at, deterministic=True)
    # Open the transaction with a statement pysqlite recognises, so the DDL below is atomic with it.
    op.execute("UPDATE library_counters SET value = value WHERE 0")
    sqlite_text_to_blob_if_not_utf8(raw, TABLE, "created_at")  # written since 0002 by another program
    columns = {row[1]: row for row in raw.execute(f"PRAGMA table_info({TABLE})")}
    if columns["created_at"][3]:  # NOT NULL (a table made by 0001): rebuild without it
        rebuild_without_not_null(raw, "created_at")
    op.execute(
        f"UPDATE {TABLE} SET created_at = thumbs_created_at(created_at) "
        "WHERE created_at IS NOT thumbs_created_at(created_at)"
    )
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)


def sqlite_created_at(value: object) -> str | None:
    parsed = parse_timestamp(value)
    if parsed is None or parsed == EPOCH:
        return None
    return (
        f"{parsed.year:04d}-{parsed.month:02d}-{parsed.day:02d} "
        f"{parsed.hour:02d}:{parsed.minute:02d}:{parsed.second:02d}.{parsed.microsecond:06d}"
    )


def rebuild_without_not_null(raw: object, column: str) -> None:
    """SQLite cannot drop NOT NULL: copy into a table made from the same SQL minus it, in place.

    Indexes and triggers are recreated from their own stored SQL, so partial indexes and the
    counter triggers come back exactly; the copy itself fires no trigger (the new table has none).
    """
    execute = raw.execute  # type: ignore[attr-defined]
    # All of it inside the migration's transaction: a crash half-way leaves the old table as it was.
    assert raw.in_transaction, "the rebuild must run inside a transaction"  # type: ignore[attr-defined]
    (table_sql,) = execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
    new_sql, replaced = re.subn(
        rf'(["`\[]?{column}["`\]]?\s+[A-Za-z]+(?:\s*\([^)]*\))?)\s+NOT\s+NULL', r"\1", table_sql, count=1, flags=re.I
    )
    if not replaced:
        raise RuntimeError(f"cannot find NOT NULL on {TABLE}.{column} in {table_sql!r}; drop it by hand")
    dependants = [
        sql
        for (sql,) in execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') AND sql IS NOT NULL",
            (TABLE,),
        )
    ]
    temporary = f"{TABLE}_rebuild"
    execute(f"DROP TABLE IF EXISTS {temporary}")
    execute(re.sub(rf"^\s*CREATE\s+TABLE\s+[\"`\[]?{TABLE}[\"`\]]?", f"CREATE TABLE {temporary}", new_sql, flags=re.I))
    execute(f"INSERT INTO {temporary} SELECT * FROM {TABLE}")
    execute(f"DROP TABLE {TABLE}")
    execute(f"ALTER TABLE {temporary} RENAME TO {TABLE}")
    for sql in dependants:
        execute(sql)


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index("ix_pso_no_url", table_name=TABLE)
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS pso_created_at_readable ON {TABLE}")
        op.execute("DROP FUNCTION IF EXISTS library_created_at_readable()")
    else:
        op.execute("DROP TRIGGER IF EXISTS pso_created_at_insert")
        op.execute("DROP TRIGGER IF EXISTS pso_created_at_update")
    # NULL dates stay NULL: 0002's NOT NULL cannot be restored without inventing dates.
