"""De-duplicate ingests by the canonical url: each stored url's hash is its canonical form's.

Ingest now stores and hashes the RFC 3986 normal form of a url
(:func:`library_api.canonical.canonical_url`): ``HTTP://Host:80/x/../a.png#f`` is
``http://host/a.png``. Rows stored before kept the hash of their url as written, so an ingest
of an equivalent spelling would not find them and would add a second row for the image.

This gives every stored url the hash of its canonical form; no url, date or status is
changed, so nothing stored is lost and the listing shows each row as it was. Among rows with
one canonical form, the row already holding that hash keeps it, else the lowest id takes it
(rows over 4,096 bytes, which the listing leaves out, never take it);
the others get NULL (as 0002 did for legacy duplicates: kept and listed, only no longer the
one an ingest finds). A url with no canonical form (not http(s), junk) keeps the hash it had.

The urls are read in id order in batches and canonicalised in Python (about 11 us each);
only rows whose hash changes are written, through a temporary table, in two statements (the
old hashes released, then the new ones set), so the unique index never sees two holders.
On PostgreSQL the table is locked against writes (reads go on) for the run, so no ingest
lands between the scan and the update. Running it again changes nothing.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

from library_api.canonical import canonical_url

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLE = "pipeline_step_outputs"
WORK = "pso_canonical_hashes"
BATCH = 5000


# Rows whose url is longer are not listed (0011, library_api.images.web_address_sql): one must not
# be what an ingest finds (``http://h/a.png#`` + 5 KB would otherwise answer for ``http://h/a.png``
# with a row no listing shows); it keeps its hash, and the ingest stores a listed row.
MAX_LISTED_BYTES = 4096


def canonical_hash(url: object) -> str | None:
    """The hash ingest gives this url now; None when it has no canonical form or is not listed."""
    if not isinstance(url, str) or len(url.encode("utf-8", "surrogatepass")) > MAX_LISTED_BYTES:
        return None
    canonical = canonical_url(url)
    return None if canonical is None else hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
    op.execute(f"DROP TABLE IF EXISTS {WORK}")
    op.execute(f"CREATE TEMPORARY TABLE {WORK} (id BIGINT PRIMARY KEY, url_hash VARCHAR(64) NOT NULL)")
    read = sa.text(
        f"SELECT id, url, url_hash FROM {TABLE} WHERE id > CAST(:after AS BIGINT) AND url IS NOT NULL "
        f"ORDER BY id LIMIT {BATCH}"
    )
    write = sa.text(f"INSERT INTO {WORK} (id, url_hash) VALUES (:id, :url_hash)")
    after = -(2**63)
    while True:
        rows = bind.execute(read, {"after": after}).all()
        if not rows:
            break
        after = rows[-1][0]
        changes = []
        for row_id, url, stored in rows:
            wanted = canonical_hash(url)
            if wanted is not None and wanted != stored:
                changes.append({"id": row_id, "url_hash": wanted})
        if changes:
            bind.execute(write, changes)
    # Release the hashes of the rows that change, then give each canonical hash nobody holds
    # to the lowest id wanting it.
    op.execute(f"UPDATE {TABLE} SET url_hash = NULL WHERE id IN (SELECT id FROM {WORK})")
    op.execute(
        f"UPDATE {TABLE} SET url_hash = (SELECT w.url_hash FROM {WORK} w WHERE w.id = {TABLE}.id) "
        f"WHERE id IN (SELECT min(w.id) FROM {WORK} w WHERE NOT EXISTS "
        f"(SELECT 1 FROM {TABLE} t WHERE t.url_hash = w.url_hash) GROUP BY w.url_hash)"
    )
    op.execute(f"DROP TABLE {WORK}")


def downgrade() -> None:
    """Hashes of the canonical form de-duplicate at least as well as the old ones: kept."""
