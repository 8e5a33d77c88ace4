"""A legacy row whose url is no web address (javascript:, file:, 1 MB, junk) is kept but not listed.

The listing returned such urls as stored: a 1 MB value made a 1 MB page, and `url` (a string the
contract says is the full image) could be `javascript:alert(1)`. They are now left out like rows
without a url, with `total`, `until_total`, `count` and filtered totals agreeing with the pages,
in offset and cursor walks alike, on SQLite and PostgreSQL; nothing stored is changed.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from library_api import images
from library_api.app import create_api, mount_api
from library_api.migrate import run_migrations
from tests.api.conftest import in_thread
from tests.api.legacy import create_legacy_table, fresh_database
from tests.api.warm import RecordingWarmClient
from thumbs.settings import Settings

BASE = "http://images.example"
HUGE = BASE + "/" + "a" * 1_000_000  # http, but a 1 MB url
# (url, listed?)
ROWS: list[tuple[str | None, bool]] = [
    (f"{BASE}/1.png", True),
    ("javascript:alert(1)", False),
    (f"{BASE}/2.png", True),
    ("file:///etc/passwd", False),
    (HUGE, False),
    ("HTTPS://Images.Example/3.png", True),  # any case
    ("data:image/png;base64," + "A" * 5000, False),
    ("/static/4.png", True),  # same-origin, as the picker loads it
    ("not a url", False),
    ("//images.example/5.png", True),
    ("", False),
    ("/\\evil.example/x.png", False),
    (None, False),
    (BASE + "/" + "b" * 4000, True),  # long, within the 4,096-byte cap
    (BASE + "/" + "é" * 2100, False),  # 2,121 characters, 4,221 bytes
    ("ftp://images.example/6.png", False),
    (f"{BASE}/7.png", True),
]
LISTED = sum(listed for _, listed in ROWS)


async def raw_execute(url: str, statement: str, *args: Any) -> None:
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split(":///", 1)[1])
        try:
            connection.execute(statement.replace("$1", "?"), args)
            connection.commit()
        finally:
            connection.close()
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute(statement, *args)
    finally:
        await pg.close()


async def row_count(url: str) -> int:
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split(":///", 1)[1])
        try:
            return int(connection.execute("SELECT count(*) FROM pipeline_step_outputs").fetchone()[0])
        finally:
            connection.close()
    pg = await asyncpg.connect(url)
    try:
        return int(await pg.fetchval("SELECT count(*) FROM pipeline_step_outputs"))
    finally:
        await pg.close()


async def walk(client: httpx.AsyncClient, by: str, **params: Any) -> tuple[list[int], set[int], int]:
    ids: list[int] = []
    totals: set[int] = set()
    biggest = 0
    query: dict[str, Any] = {"limit": 3, **params}
    for _ in range(50):
        response = await client.get("/api/library/images", params=query)
        assert response.status_code == 200, response.text
        biggest = max(biggest, len(response.content))
        page = response.json()
        ids += [image["id"] for image in page["images"]]
        totals.add(page["total"])
        if page["next_cursor"] is None:
            return ids, totals, biggest
        query = {"limit": 3, **params, **({"cursor": page["next_cursor"]} if by == "cursor" else {"offset": len(ids)})}
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_rows_whose_url_is_no_web_address_are_not_listed_and_not_counted(
    kind: str, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    start = dt.datetime(2024, 5, 1, 12, 0)
    rows = [(url, start + dt.timedelta(minutes=n), n % 2, "legacy") for n, (url, _) in enumerate(ROWS)]
    expected = [n for n, (_, listed) in reversed(list(enumerate(ROWS, start=1))) if listed]  # newest first
    with fresh_database(kind, tmp_path) as url:
        await create_legacy_table(url, rows)
        settings = make_settings(database_url=url, allowed_sources=["images.example"])
        in_thread(lambda: run_migrations(settings))
        api = create_api(settings, RecordingWarmClient())
        async with api.component.lifespan():
            transport = httpx.ASGITransport(app=mount_api(api))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                for by in ("offset", "cursor"):
                    ids, totals, biggest = await walk(client, by)
                    assert ids == expected and totals == {LISTED}, by
                    assert biggest < 100_000, biggest  # the 1 MB url is in no page
                first = (await client.get("/api/library/images", params={"limit": 3})).json()
                images_seen = first["images"]
                assert all(image["url"].startswith(("http", "HTTP", "/")) for image in images_seen)
                head = first["head_cursor"]
                under = (await client.get("/api/library/images", params={"limit": 3, "until": head})).json()
                assert under["until_total"] == LISTED and under["total"] == LISTED
                # Junk written later by another program, straight into the table: not listed, not counted.
                await raw_execute(url, "INSERT INTO pipeline_step_outputs (url, created_at) VALUES ($1, now())"
                                  if kind == "postgresql" else
                                  "INSERT INTO pipeline_step_outputs (url, created_at) VALUES ($1, '2030-01-01')",
                                  "javascript:alert(2)")
                await raw_execute(url, "INSERT INTO pipeline_step_outputs (url) VALUES ($1)", HUGE + "x")
                newer = (await client.get("/api/library/images", params={"limit": 3, "newer_than": head})).json()
                assert newer["count"] == 0 and newer["images"] == [] and newer["total"] == LISTED
                under = (await client.get("/api/library/images", params={"limit": 3, "until": head})).json()
                assert under["until_total"] == LISTED and under["total"] == LISTED
                # A filter counts the same way.
                for pipeline in ("0", "1"):
                    wanted = [n for n in expected if (n - 1) % 2 == int(pipeline)]
                    ids, totals, _ = await walk(client, "cursor", pipeline_id=pipeline)
                    assert ids == wanted and totals == {len(wanted)}, pipeline
                # A good row written by another program is listed and counted.
                await raw_execute(url, "INSERT INTO pipeline_step_outputs (url) VALUES ($1)", f"{BASE}/later.png")
                ids, totals, _ = await walk(client, "offset")
                assert len(ids) == LISTED + 1 and totals == {LISTED + 1}
        assert await row_count(url) == len(ROWS) + 3  # nothing stored was removed


async def test_the_total_counts_unlisted_rows_from_their_partial_index(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    """Migration 0011's index serves the count subtracted from the counter: the query states the
    index's condition in the same words, which both planners need to use a partial index."""
    migration = importlib.import_module("library_api.migrations.versions.0011_unlisted_urls")
    assert migration.UNLISTED == {dialect: images.unlisted_sql(dialect) for dialect in ("postgresql", "sqlite")}
    settings = make_settings(database_url=database_url)
    api = create_api(settings, RecordingWarmClient())
    async with api.component.lifespan():
        database = api.database
        postgres = database.url.dialect == "postgresql"
        sql = f"SELECT count(*) FROM pipeline_step_outputs WHERE {images.unlisted_sql(database.url.dialect)}"
        async with database.transaction(force_rollback=True):
            if postgres:
                await database.execute("SET LOCAL enable_seqscan = off")
                plan = " ".join(str(row[0]) for row in await database.fetch_all(f"EXPLAIN {sql}"))
            else:
                plan = " ".join(str(row[3]) for row in await database.fetch_all(f"EXPLAIN QUERY PLAN {sql}"))
        assert "ix_pso_unlisted" in plan, plan


async def test_sqlite_blob_urls_are_judged_like_text(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    """SQLite compares a blob with text as unequal whatever the bytes: a legacy blob url (bytes a C
    writer left, or 0002's non-UTF-8 text) is judged on its bytes, and the listing agrees with total."""
    with fresh_database("sqlite", tmp_path) as url:
        await create_legacy_table(url, [])
        settings = make_settings(database_url=url)
        in_thread(lambda: run_migrations(settings))
        blobs = [(b"/", True), (b"/x.png", True), (b"/\\x", False), (b"", False), (b"HTTP://h/\xff", True),
                 (b"javascript:1", False)]
        for blob, _ in blobs:
            await raw_execute(url, "INSERT INTO pipeline_step_outputs (url, created_at) VALUES (?, '2024-01-01')", blob)
        api = create_api(settings, RecordingWarmClient())
        async with api.component.lifespan():
            transport = httpx.ASGITransport(app=mount_api(api))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                for by in ("offset", "cursor"):
                    ids, totals, _ = await walk(client, by)
                    assert sorted(ids) == [n for n, (_, listed) in enumerate(blobs, start=1) if listed], by
                    assert totals == {sum(listed for _, listed in blobs)}
