"""An index of the rows without a ``url_hash``, by the start of their url, for ingest's de-dup.

Ingest finds an image already stored by ``url_hash``. A row written straight into the table
(an operator's own INSERT, another program, a legacy writer after 0010) has none, so an ingest
of its url added a second row for the image. Ingest now looks such a row up by its url before
storing a new one (:func:`library_api.images.insert_image`) and gives it the hash; this partial
index makes that one lookup instead of a scan of the table. On the url's first
:data:`PREFIX` characters (a btree entry must stay under ~2.7 KB on PostgreSQL, and urls
may be 4,096 bytes), which is how the lookup states it (tests/api/test_ingest.py checks the
plan on both databases). Nothing is written to any row.

On PostgreSQL built with CREATE INDEX CONCURRENTLY (writes go on) in Alembic's autocommit block,
as 0012 does; an INVALID index left by a cancelled build is dropped and built again.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"
NAME = "ix_pso_unhashed_url"
PREFIX = 200  # library_api.images.UNHASHED_PREFIX
# As library_api.images.UNHASHED states it ("url_hash IS NULL" made SQLite pick the unique index).
WHERE = "coalesce(url_hash, '') = '' AND url IS NOT NULL"
COLUMNS = f"substr(url, 1, {PREFIX})"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        if NAME not in {index["name"] for index in sa.inspect(bind).get_indexes(TABLE)}:
            op.execute(f"CREATE INDEX {NAME} ON {TABLE} ({COLUMNS}) WHERE {WHERE}")
        return
    with op.get_context().autocommit_block():
        valid = bind.execute(
            sa.text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND i.indrelid = CAST(:table AS regclass)"
            ),
            {"name": NAME, "table": TABLE},
        ).scalar()
        if valid is False:  # a concurrent build that did not finish
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
        if valid is not True:
            op.execute(f"CREATE INDEX CONCURRENTLY {NAME} ON {TABLE} ({COLUMNS}) WHERE {WHERE}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {NAME}")
        return
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
