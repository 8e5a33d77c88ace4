"""Backfill jobs and their per-image failures.

A partial unique index allows at most one running job, whatever the number of processes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "thumbnail_jobs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cursor_created_at", sa.DateTime(timezone=True)),
        sa.Column("cursor_id", sa.BigInteger),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.Column("run_started_at", sa.DateTime(timezone=True)),
        sa.Column("run_processed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
    )
    running = sa.text("status = 'running'")
    op.create_index(
        "ux_thumbnail_jobs_running",
        "thumbnail_jobs",
        ["status"],
        unique=True,
        postgresql_where=running,
        sqlite_where=running,
    )
    op.create_table(
        "thumbnail_job_failures",
        sa.Column("job_id", sa.BigInteger, primary_key=True),
        sa.Column("image_id", sa.BigInteger, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("error", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("thumbnail_job_failures")
    op.drop_index("ux_thumbnail_jobs_running", table_name="thumbnail_jobs")
    op.drop_table("thumbnail_jobs")
