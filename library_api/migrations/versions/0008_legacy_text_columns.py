"""Legacy column types the API cannot work with: text columns on PostgreSQL, a real id on SQLite.

PostgreSQL: ``url``, ``pipeline_id`` and ``step`` become ``text``. A legacy writer may have
declared ``pipeline_id integer``, ``step jsonb`` or ``url varchar(255)``: the listing's filters
then failed (``'p1'`` is no integer), ingest could not store a label or a long URL, and each
was a 500. Each such column is altered to ``text``
with its values cast (``12`` stays ``'12'``; nothing is dropped or cut). The indexes on them
are rebuilt by PostgreSQL; the table is locked while it is rewritten, once.

SQLite has no column types to fix there (any column takes text, its comparisons coerce), but
a legacy table whose ``id`` is not ``INTEGER PRIMARY KEY`` holds NULL or repeated ids and gives
new rows none: the listing failed on them. It is rebuilt with one, every row kept (see
:func:`library_api.migrations.legacy_ids.repair_sqlite_ids`); 0002 does the same on a database
that had not reached it.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from library_api.migrations.legacy_ids import repair_sqlite_ids

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"
TEXT_COLUMNS = ("url", "pipeline_id", "step")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        raw = bind.connection.driver_connection
        assert raw is not None
        repair_sqlite_ids(raw)
        return
    found = bind.execute(
        sa.text(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :table "
            "AND column_name = ANY(:columns) AND data_type <> 'text'"
        ),
        {"table": TABLE, "columns": list(TEXT_COLUMNS)},
    )
    for (column,) in found.all():
        op.execute(f'ALTER TABLE {TABLE} ALTER COLUMN "{column}" TYPE text USING "{column}"::text')


def downgrade() -> None:
    """The legacy types are not restored: text holds every value they held."""
