"""An exact image count kept by triggers, so ``total`` never needs a full COUNT(*).

PostgreSQL uses statement-level triggers with transition tables (one counter update per
INSERT/COPY statement, not per row); SQLite, which has only row triggers, one per row.
The triggers are created before the initial count, in one transaction on PostgreSQL
(CREATE TRIGGER blocks writers until commit), so no concurrent insert is missed.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"

POSTGRESQL = [
    """
    CREATE OR REPLACE FUNCTION library_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE library_counters SET value = value + (SELECT count(*) FROM inserted_rows) WHERE name = 'images';
        RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION library_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE library_counters SET value = value - (SELECT count(*) FROM deleted_rows) WHERE name = 'images';
        RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION library_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE library_counters SET value = 0 WHERE name = 'images';
        RETURN NULL;
    END $$
    """,
    f"DROP TRIGGER IF EXISTS pso_count_insert ON {TABLE}",
    f"DROP TRIGGER IF EXISTS pso_count_delete ON {TABLE}",
    f"DROP TRIGGER IF EXISTS pso_count_truncate ON {TABLE}",
    f"""CREATE TRIGGER pso_count_insert AFTER INSERT ON {TABLE} REFERENCING NEW TABLE AS inserted_rows
        FOR EACH STATEMENT EXECUTE FUNCTION library_count_inserted()""",
    f"""CREATE TRIGGER pso_count_delete AFTER DELETE ON {TABLE} REFERENCING OLD TABLE AS deleted_rows
        FOR EACH STATEMENT EXECUTE FUNCTION library_count_deleted()""",
    f"""CREATE TRIGGER pso_count_truncate AFTER TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION library_count_truncated()""",
]

SQLITE = [
    f"""CREATE TRIGGER IF NOT EXISTS pso_count_insert AFTER INSERT ON {TABLE} BEGIN
        UPDATE library_counters SET value = value + 1 WHERE name = 'images'; END""",
    f"""CREATE TRIGGER IF NOT EXISTS pso_count_delete AFTER DELETE ON {TABLE} BEGIN
        UPDATE library_counters SET value = value - 1 WHERE name = 'images'; END""",
]


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("library_counters"):
        op.create_table(
            "library_counters",
            sa.Column("name", sa.String(32), primary_key=True),
            sa.Column("value", sa.BigInteger, nullable=False),
        )
    for statement in POSTGRESQL if bind.dialect.name == "postgresql" else SQLITE:
        op.execute(statement)
    op.execute("DELETE FROM library_counters WHERE name = 'images'")
    op.execute(f"INSERT INTO library_counters (name, value) SELECT 'images', count(*) FROM {TABLE}")


def downgrade() -> None:
    bind = op.get_bind()
    for trigger in ("pso_count_insert", "pso_count_delete", "pso_count_truncate"):
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {TABLE}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    if bind.dialect.name == "postgresql":
        for function in ("library_count_inserted", "library_count_deleted", "library_count_truncated"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table("library_counters")
