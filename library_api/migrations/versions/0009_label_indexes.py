"""Indexes for the listing's ``pipeline_id`` and ``step`` filters, newest first.

Without them a filtered page and its count walk the whole table: on 200,000 PostgreSQL rows a
``?pipeline_id=`` page took 38 ms, at ``offset=9000`` 59 ms, and a label nobody uses 57 ms, growing
with the table. Each index is ``(label, created_at, id)``, the listing's order within one label.

Partial, on listed rows (with a url) and values of at most :data:`MAX_LABEL_LENGTH` characters
(so a filtered total is counted from the index alone): a legacy writer may have stored
a label far longer (a JSON blob in ``step``), and a btree entry over ~2.7 KB would fail the
migration on PostgreSQL. Filter values are never longer than that, so the listing adds the same
literal condition (:func:`library_api.images.label_bounds`) and both databases use the index.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"
# The longest filter value the listing takes (library_api.paging.MAX_LABEL_LENGTH, as ingest allows).
MAX_LABEL_LENGTH = 200
INDEXES = {"ix_pso_pipeline_created_id": "pipeline_id", "ix_pso_step_created_id": "step"}


def upgrade() -> None:
    existing = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(TABLE)}
    for name, column in INDEXES.items():
        if name in existing:
            continue
        # Listed rows only (they have a url): a filtered total is then counted from the index alone.
        listed = sa.text(f"url IS NOT NULL AND length({column}) <= {MAX_LABEL_LENGTH}")
        op.create_index(name, TABLE, [column, "created_at", "id"], postgresql_where=listed, sqlite_where=listed)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, TABLE)
