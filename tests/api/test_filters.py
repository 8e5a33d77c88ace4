"""The listing filtered by pipeline and step: pages, total, cursors and newer_than all filtered."""

from __future__ import annotations

import importlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from library_api import images
from library_api.paging import PageRequest
from tests.api.conftest import Harness


async def test_pipeline_and_step_filters(harness: Harness, origin_url: Any) -> None:
    for n in range(9):
        await harness.add(origin_url(f"/filter-{n}.jpg"), pipeline_id=f"p{n % 3}", step="final" if n % 2 else "draft")
    everything = (await harness.client.get("/api/library/images")).json()
    p1 = (await harness.client.get("/api/library/images", params={"pipeline_id": "p1", "limit": 2})).json()
    assert p1["total"] == 3 and len(p1["images"]) == 2 and {i["pipeline_id"] for i in p1["images"]} == {"p1"}
    rest = (await harness.client.get("/api/library/images",
                                     params={"pipeline_id": "p1", "cursor": p1["next_cursor"], "limit": 2})).json()
    assert [i["pipeline_id"] for i in rest["images"]] == ["p1"] and rest["next_cursor"] is None
    both = (await harness.client.get("/api/library/images", params={"pipeline_id": "p1", "step": "final"})).json()
    assert {(i["pipeline_id"], i["step"]) for i in both["images"]} == {("p1", "final")}
    assert both["total"] == len(both["images"])
    assert everything["total"] == 9
    none = (await harness.client.get("/api/library/images", params={"pipeline_id": "nope"})).json()
    assert none["total"] == 0 and none["images"] == []
    head = p1["head_cursor"]
    await harness.add(origin_url("/filter-new-a.jpg"), pipeline_id="p1", step="draft")
    await harness.add(origin_url("/filter-new-b.jpg"), pipeline_id="p2", step="draft")
    newer = (await harness.client.get("/api/library/images", params={"pipeline_id": "p1", "newer_than": head})).json()
    assert newer["count"] == 1 and [i["pipeline_id"] for i in newer["images"]] == ["p1"]
    for bad in ("p" * 201, "a\x00b"):
        response = await harness.client.get("/api/library/images", params={"pipeline_id": bad})
        assert response.status_code == 400 and response.json()["error"] == "invalid_parameter"


async def test_a_filtered_page_and_its_total_are_read_from_the_label_indexes(harness: Harness, origin_url: Any) -> None:
    """The label indexes serve ?pipeline_id= and ?step= (without them a filtered page and its count
    walked the whole table: 38-57 ms on 200,000 PostgreSQL rows); the planners use a partial index
    only when the query states its condition, which label_bounds and LISTABLE add.

    Migration 0012's indexes also state the listing's url condition (0011), so on PostgreSQL a
    filtered count is an index-only scan: with 0009's, every entry read the url from the table
    (a count of 10,000 of 200,000 rows 0.83 -> 3.81 ms)."""
    for n in range(40):
        await harness.add(origin_url(f"/indexed-{n}.jpg"), pipeline_id=f"p{n % 4}", step=f"s{n % 5}")
    database = harness.api.database
    postgres = database.url.dialect == "postgresql"
    indexed = ((PageRequest(limit=50, offset=0, pipeline_id="p2"), "ix_pso_pipeline_listed"),
               (PageRequest(limit=50, offset=0, step="s3"), "ix_pso_step_listed"))
    for request, index in indexed:
        parts = images.request_segments(request)
        assert parts.dated is not None and parts.undated is not None
        page = sa.select(*images.LISTED).where(*parts.dated).order_by(*images.NEWEST_FIRST).limit(51)
        totals = [sa.select(sa.func.count()).select_from(sa.select(sa.literal_column("1")).select_from(images.images)
                                                         .where(*conditions).subquery())
                  for conditions in (parts.dated, parts.undated)]  # count_filtered's two counts
        for query in (page, *totals):
            sql = str(query.compile(dialect=_dialect(postgres), compile_kwargs={"literal_binds": True}))
            async with database.transaction(force_rollback=True):
                if postgres:
                    # 40 rows: make it choose an index, and not a bitmap scan (which never is index-only).
                    await database.execute("SET LOCAL enable_seqscan = off")
                    await database.execute("SET LOCAL enable_bitmapscan = off")
                    plan = " ".join(str(row[0]) for row in await database.fetch_all(f"EXPLAIN {sql}"))
                else:
                    plan = " ".join(str(row[3]) for row in await database.fetch_all(f"EXPLAIN QUERY PLAN {sql}"))
            assert index in plan, (request, plan)
            if postgres and query is not page:
                assert f"Index Only Scan using {index}" in plan, (request, plan)
    filtered = (await harness.client.get("/api/library/images", params={"pipeline_id": "p2"})).json()
    assert filtered["total"] == 10 and {image["pipeline_id"] for image in filtered["images"]} == {"p2"}


def test_the_label_indexes_state_the_listing_condition_as_the_listing_spells_it() -> None:
    migration = importlib.import_module("library_api.migrations.versions.0012_listed_label_indexes")
    for dialect in ("postgresql", "sqlite"):
        assert migration.LISTED[dialect] == images.web_address_sql("url", dialect) + " <> 0"
        query = sa.select(images.images.c.id).where(images.LISTABLE)
        compiled = str(query.compile(dialect=_dialect(dialect == "postgresql")))
        # No "= 1" after it (a Boolean on SQLite): the planner would no longer match the index's WHERE.
        assert compiled.endswith(images.web_address_sql("pipeline_step_outputs.url", dialect) + " <> 0"), compiled


def _dialect(postgres: bool) -> sa.Dialect:
    return postgresql.dialect() if postgres else sqlite.dialect()
