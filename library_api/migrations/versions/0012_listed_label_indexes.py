"""The label indexes of 0009 rebuilt with the listing's url condition, so a filtered total is
counted from the index alone again.

Since 0011 the listing takes only rows whose url is a web address
(:func:`library_api.images.web_address_sql`), a condition on ``url``, which 0009's indexes
(``(label, created_at, id) WHERE url IS NOT NULL AND length(label) <= 200``) do not hold: every
entry of a filtered count went to the table to read the url, and the index-only scan was gone
(a count of 10,000 of 200,000 PostgreSQL rows: 0.83 -> 3.81 ms). These indexes state that
condition in their WHERE, spelled as the listing spells it (tests/api/test_filters.py checks it),
so both planners prove it from the query and never read the url.

Online on PostgreSQL: each new index is built with CREATE INDEX CONCURRENTLY (writes go on)
before the old one is dropped with DROP INDEX CONCURRENTLY, so the filters always have an
index. Neither may run inside a transaction, so they run in Alembic's autocommit block: the
migrations before this one are committed first (env.py holds its lock for the whole run). A
build that failed half-way (a cancelled run) leaves an INVALID index; it is dropped and
built again. SQLite builds them in place (it has no concurrent build; its migrations run at
start, before serving).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"
MAX_LABEL_LENGTH = 200  # 0009's, library_api.paging.MAX_LABEL_LENGTH
OLD = {"ix_pso_pipeline_created_id": "pipeline_id", "ix_pso_step_created_id": "step"}
NEW = {"ix_pso_pipeline_listed": "pipeline_id", "ix_pso_step_listed": "step"}
# library_api.images.web_address_sql("url", dialect) + " <> 0", spelled the same.
_CHECKS = (
    "WHEN substr(url, 1, 8) = 'https://' OR substr(url, 1, 7) = 'http://' THEN 1 "
    "WHEN lower(substr(url, 1, 8)) = 'https://' OR lower(substr(url, 1, 7)) = 'http://' "
    "OR (lower(substr(url, 1, 1)) = '/' AND lower(substr(url, 1, 2)) <> '/\\') THEN 1 ELSE 0 END <> 0"
)
LISTED = {
    "postgresql": f"CASE WHEN octet_length(url) > 4096 THEN 0 {_CHECKS}",
    "sqlite": f"CASE WHEN length(CAST(url AS BLOB)) > 4096 THEN 0 {_CHECKS}",
}


def old_where(column: str, dialect: str) -> str:
    return f"url IS NOT NULL AND length({column}) <= {MAX_LABEL_LENGTH}"


def new_where(column: str, dialect: str) -> str:
    return f"url IS NOT NULL AND length({column}) <= {MAX_LABEL_LENGTH} AND {LISTED[dialect]}"


def upgrade() -> None:
    swap(create=NEW, where=new_where, drop=OLD)


def downgrade() -> None:
    swap(create=OLD, where=old_where, drop=NEW)


def swap(*, create: dict[str, str], where: Callable[[str, str], str], drop: dict[str, str]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        existing = {index["name"] for index in sa.inspect(bind).get_indexes(TABLE)}
        for name, column in create.items():
            if name not in existing:
                condition = sa.text(where(column, "sqlite"))
                op.create_index(name, TABLE, [column, "created_at", "id"], sqlite_where=condition)
        for name in drop:
            if name in existing:
                op.drop_index(name, TABLE)
        return
    with op.get_context().autocommit_block():
        for name, column in create.items():
            valid = pg_index_valid(name)
            if valid is False:  # a concurrent build that did not finish
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            if valid is not True:
                op.execute(
                    f"CREATE INDEX CONCURRENTLY {name} ON {TABLE} ({column}, created_at, id) "
                    f"WHERE {where(column, 'postgresql')}"
                )
        for name in drop:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def pg_index_valid(name: str) -> bool | None:
    """None: no such index on the table; else whether PostgreSQL may use it."""
    return op.get_bind().execute(
        sa.text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND i.indrelid = CAST(:table AS regclass)"
        ),
        {"name": name, "table": TABLE},
    ).scalar()
