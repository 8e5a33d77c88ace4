"""Baseline: the product's legacy ``pipeline_step_outputs`` table, created only if absent.

An existing product database already has it (with rows); a new embedded one does not.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("pipeline_step_outputs"):
        return
    op.create_table(
        "pipeline_step_outputs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pipeline_id", sa.Text),
        sa.Column("step", sa.Text),
    )


def downgrade() -> None:
    # Never drop the product's table: it holds the library.
    pass
