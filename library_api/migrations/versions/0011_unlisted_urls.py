"""Rows whose url is no web address are kept but not listed: a partial index counts them.

A legacy row's url may be anything: ``javascript:``, ``file:``, a 1 MB ``data:`` URL, junk.
The listing returned it as stored (a 1 MB value made a 1 MB page) while the contract promises
an image a client can load. The listing now takes only rows whose url is http(s) (any case) or
a path on the picker's origin (``/...``), at most 4,096 bytes
(:func:`library_api.images.web_address_sql`); the others stay in the table as they are, like
rows without a url. ``total`` is the trigger-kept counter minus the rows not listed, so this
index holds exactly those (url NULL included) and the count is a lookup of just them.
Nothing is written to any row.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"
# library_api.images.unlisted_sql(dialect), spelled the same (tests/api/test_unlisted_urls.py checks
# it): both planners use a partial index only for a query stating its condition.
CHECKS = (
    "WHEN substr(url, 1, 8) = 'https://' OR substr(url, 1, 7) = 'http://' THEN 1 "
    "WHEN lower(substr(url, 1, 8)) = 'https://' OR lower(substr(url, 1, 7)) = 'http://' "
    "OR (lower(substr(url, 1, 1)) = '/' AND lower(substr(url, 1, 2)) <> '/\\') THEN 1 ELSE 0 END = 0"
)
UNLISTED = {
    "postgresql": f"CASE WHEN octet_length(url) > 4096 THEN 0 {CHECKS}",
    "sqlite": f"CASE WHEN length(CAST(url AS BLOB)) > 4096 THEN 0 {CHECKS}",
}


def upgrade() -> None:
    existing = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(TABLE)}
    if "ix_pso_unlisted" not in existing:
        unlisted = sa.text(UNLISTED["postgresql" if op.get_bind().dialect.name == "postgresql" else "sqlite"])
        op.create_index("ix_pso_unlisted", TABLE, ["id"], postgresql_where=unlisted, sqlite_where=unlisted)


def downgrade() -> None:
    op.drop_index("ix_pso_unlisted", TABLE)
