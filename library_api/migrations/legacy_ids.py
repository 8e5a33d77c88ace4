"""Legacy ``pipeline_step_outputs`` tables whose ``id`` is not a primary key (PostgreSQL).

The API needs every row to have its own id: it is the listing's tie-break and cursor, the
backfill's cursor and the row its outcome is written to; ingest relies on the database to
assign it. A product table created without a primary key may hold NULL or repeated ids and
have no default. Rows are never deleted: each NULL id and each repeat after the first
(in physical order) gets a new id from the column's sequence, then the primary key is added.
Used by 0002 (before ids are read for url hashes) and 0007 (databases already past 0002).
"""

from __future__ import annotations

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
