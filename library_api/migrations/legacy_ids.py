"""Legacy ``pipeline_step_outputs`` tables whose ``id`` is not a primary key (PostgreSQL and SQLite).

The API needs every row to have its own id: it is the listing's tie-break and cursor, the
backfill's cursor and the row its outcome is written to; ingest relies on the database to
assign it. A product table created without a primary key may hold NULL or repeated ids and
have no default. Rows are never deleted: each NULL id and each repeat after the first
(in physical order) gets a new id from the column's sequence, then the primary key is added.
Used by 0002 (before ids are read for url hashes) and, for databases already past 0002,
0007 (PostgreSQL) and 0008 (SQLite).
"""

from __future__ import annotations

import re
import sqlite3

import sqlalchemy as sa

TABLE = "pipeline_step_outputs"
SEQUENCE = f"{TABLE}_id_seq"
REPEATED_IDS = f"""SELECT ctid FROM (
    SELECT ctid, row_number() OVER (PARTITION BY id ORDER BY ctid) AS nth FROM {TABLE} WHERE id IS NOT NULL
) numbered WHERE nth > 1"""


def repair_postgresql_ids(bind: sa.Connection) -> None:
    """NULL and repeated ids get new ones from the sequence; then ``id`` becomes the primary key."""
    if sa.inspect(bind).get_pk_constraint(TABLE)["constrained_columns"]:
        return
    sequence = id_sequence(bind)
    catch_up(bind, sequence)
    # DEFAULT, not nextval(): an identity column (GENERATED ALWAYS) only takes DEFAULT.
    bind.execute(sa.text(f"UPDATE {TABLE} SET id = DEFAULT WHERE id IS NULL"))
    bind.execute(sa.text(f"UPDATE {TABLE} SET id = DEFAULT WHERE ctid IN ({REPEATED_IDS})"))
    bind.execute(sa.text(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)"))


def id_sequence(bind: sa.Connection) -> str:
    """The sequence behind ``id`` (serial or identity); one is made and made the default if none is."""
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": TABLE}).scalar()
    if sequence is not None:
        return str(sequence)
    bind.execute(sa.text(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}"))
    bind.execute(sa.text(f"ALTER SEQUENCE {SEQUENCE} OWNED BY {TABLE}.id"))
    bind.execute(sa.text(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')"))
    return SEQUENCE


def catch_up(bind: sa.Connection, sequence: str) -> None:
    """Legacy writers may have set ids by hand past the sequence: a new id must not repeat one."""
    highest = bind.execute(sa.text(f"SELECT max(id) FROM {TABLE}")).scalar()
    last = bind.execute(sa.text(f"SELECT last_value FROM {sequence}")).scalar()
    if highest is not None and last is not None and highest >= last:
        bind.execute(sa.text("SELECT setval(:sequence, :value)"), {"sequence": sequence, "value": highest})


def hash_unhashed_urls(bind: sa.Connection) -> None:
    """A url whose rows all had NULL ids when 0002 ran has no hashed row: hash one, so ingest dedupes it."""
    bind.execute(
        sa.text(
            f"UPDATE {TABLE} SET url_hash = encode(sha256(convert_to(url, 'UTF8')), 'hex') "
            f"WHERE id IN (SELECT min(id) FROM {TABLE} WHERE url IS NOT NULL GROUP BY url HAVING count(url_hash) = 0)"
        )
    )


# SQLite: the same repair, by a rebuild (SQLite cannot add a primary key to a table).
# Each row's id as an integer, when it is one (integer, or text spelling one exactly).
SQLITE_ID_CANDIDATE = """CASE
    WHEN typeof(id) = 'integer' THEN id
    WHEN typeof(id) = 'text' AND CAST(CAST(id AS INTEGER) AS TEXT) = id THEN CAST(id AS INTEGER)
END"""


def sqlite_id_is_rowid(raw: sqlite3.Connection) -> bool:
    """``id INTEGER PRIMARY KEY`` on a rowid table: SQLite keeps it unique, non-NULL and assigns it."""
    if without_rowid(raw):
        return False
    keys = [row for row in raw.execute(f"PRAGMA table_info({TABLE})") if row[5]]
    return len(keys) == 1 and keys[0][1] == "id" and keys[0][2].upper() == "INTEGER"


def repair_sqlite_ids(raw: sqlite3.Connection) -> None:
    """A legacy table whose ``id`` is not the rowid (``id INTEGER``, ``id INT PRIMARY KEY``, text ids, none)
    is rebuilt with ``id INTEGER PRIMARY KEY``: each row keeps its id when it is an integer seen first
    (in rowid order); NULL, repeated and non-integer ids get new ones past the highest. Every other
    column keeps its declared type, NOT NULL and default; indexes and triggers are recreated from their
    stored SQL (a legacy table-level UNIQUE or CHECK constraint is not carried over). Inside the
    migration's transaction: a crash leaves the old table as it was.
    """
    if sqlite_id_is_rowid(raw):
        return
    if not raw.in_transaction:
        raw.execute(f"DELETE FROM {TABLE} WHERE 0")  # opens the transaction pysqlite tracks
    every_column = list(raw.execute(f"PRAGMA table_info({TABLE})"))
    columns = [row for row in every_column if row[1] != "id"]
    candidate = SQLITE_ID_CANDIDATE if len(columns) < len(every_column) else "NULL"
    order = "rowid" if not without_rowid(raw) else "id" if candidate != "NULL" else "NULL"
    definitions = ['"id" INTEGER PRIMARY KEY']
    for _, name, declared, not_null, default, _ in columns:
        definition = f'"{name}" {declared}'.rstrip()
        definition += " NOT NULL" if not_null else ""
        definition += f" DEFAULT {default}" if default is not None else ""
        definitions.append(definition)
    names = ", ".join(f'"{row[1]}"' for row in columns)
    dependants = [
        sql
        for (sql,) in raw.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') AND sql IS NOT NULL",
            (TABLE,),
        )
    ]
    temporary = f"{TABLE}_rebuild"
    raw.execute(f"DROP TABLE IF EXISTS {temporary}")
    raw.execute(f"CREATE TABLE {temporary} ({', '.join(definitions)})")
    numbered = (
        f"SELECT {names}, {candidate} AS thumbs_id, {order} AS thumbs_order, "
        f"row_number() OVER (PARTITION BY {candidate} ORDER BY {order}) AS thumbs_nth FROM {TABLE}"
    )
    # Kept ids first, so a new id (max + 1) never takes one a later row keeps.
    raw.execute(
        f"INSERT INTO {temporary} (id, {names}) SELECT thumbs_id, {names} FROM ({numbered}) "
        "WHERE thumbs_id IS NOT NULL AND thumbs_nth = 1 ORDER BY thumbs_order"
    )
    raw.execute(
        f"INSERT INTO {temporary} (id, {names}) SELECT NULL, {names} FROM ({numbered}) "
        "WHERE thumbs_id IS NULL OR thumbs_nth > 1 ORDER BY thumbs_order"
    )
    raw.execute(f"DROP TABLE {TABLE}")
    raw.execute(f"ALTER TABLE {temporary} RENAME TO {TABLE}")
    for sql in dependants:
        raw.execute(sql)


def without_rowid(raw: sqlite3.Connection) -> bool:
    (sql,) = raw.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
    return re.search(r"\bWITHOUT\s+ROWID\b", str(sql), flags=re.I) is not None
