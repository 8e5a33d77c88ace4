"""Backfill jobs remember whether they retry images that failed before.

A plain job walks the images still ``pending``; ``retry_failed`` also walks the ``failed``
ones (``thumbs backfill --retry-failed``, or ``{"retry_failed": true}`` on the endpoint).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("thumbnail_jobs")}
    if "retry_failed" not in columns:
        op.add_column(
            "thumbnail_jobs", sa.Column("retry_failed", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    op.drop_column("thumbnail_jobs", "retry_failed")
