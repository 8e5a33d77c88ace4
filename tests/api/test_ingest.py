"""POST /api/library/images warms the thumbnail in the background and records the outcome."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

import library_api.db
from library_api import images
from library_api.app import create_api, mount_api
from tests.api.conftest import Harness
from tests.api.warm import RecordingWarmClient
from thumbs.settings import Settings

LOCK_SECONDS = 4.0


async def listed(harness: Harness) -> dict[int, dict[str, Any]]:
    page = (await harness.client.get("/api/library/images", params={"limit": 200})).json()
    return {image["id"]: image for image in page["images"]}


async def test_ingest_answers_before_the_warm_finishes_then_records_it(harness: Harness, origin_url: Any) -> None:
    harness.warm.hold = asyncio.Event()
    created = await harness.add(origin_url("/fresh.jpg"))  # returns although the warm is held
    assert created["thumbnail_status"] == "pending" and created["color"] is None
    await asyncio.wait_for(harness.warm.entered.wait(), 5)
    assert harness.warm.calls == [([origin_url("/fresh.jpg")], True)]
    harness.warm.hold.set()
    await asyncio.wait_for(harness.api.ingest.idle(), 5)
    image = (await listed(harness))[created["id"]]
    assert image["thumbnail_status"] == "ready"
    assert (image["width"], image["height"], image["color"]) == (640, 480, "#336699")


async def test_ingest_records_failures_with_their_reason(harness: Harness, origin_url: Any) -> None:
    bad = origin_url("/broken.jpg")
    harness.warm.failures[bad] = ("origin_status", "origin answered 404")
    created = await harness.add(bad, width=100, height=50)
    good = await harness.add(origin_url("/fine.jpg"))
    await asyncio.wait_for(harness.api.ingest.idle(), 5)
    images = await listed(harness)
    assert images[created["id"]]["thumbnail_status"] == "failed"
    assert (images[created["id"]]["width"], images[created["id"]]["height"]) == (100, 50)  # kept
    assert images[good["id"]]["thumbnail_status"] == "ready"
    error = await harness.api.database.fetch_val(
        "SELECT thumbnail_error FROM pipeline_step_outputs WHERE id = :id", {"id": created["id"]}
    )
    assert error == "origin_status: origin answered 404"


async def test_warm_path_down_leaves_images_pending_for_the_backfill(harness: Harness, origin_url: Any) -> None:
    harness.warm.broken = True
    created = await harness.add(origin_url("/later.jpg"))
    await asyncio.wait_for(harness.api.ingest.idle(), 5)
    assert harness.warm.calls, "the warm path was asked"
    assert (await listed(harness))[created["id"]]["thumbnail_status"] == "pending"


async def test_many_concurrent_ingests_are_all_stored_and_warmed(harness: Harness, origin_url: Any) -> None:
    urls = [origin_url(f"/many/{n}.jpg") for n in range(60)]
    results = await asyncio.gather(*(harness.add(url) for url in urls))
    assert len({image["id"] for image in results}) == 60
    await asyncio.wait_for(harness.api.ingest.idle(), 10)
    images = await listed(harness)
    assert len(images) == 60 and all(image["thumbnail_status"] == "ready" for image in images.values())
    assert sorted(harness.warm.completed) == sorted(urls)
    assert (await harness.client.get("/api/library/images")).json()["total"] == 60


async def test_an_ingest_finds_a_row_written_without_a_url_hash(harness: Harness, origin_url: Any) -> None:
    """A row written straight into the table (an operator's INSERT, another program) has no url_hash;
    an ingest of its url, in its canonical or its stored spelling, answers with it instead of adding
    a second row, and gives it the hash (the next ingest finds it by that). Concurrent ingests too."""
    database = harness.api.database
    plain, shouting = origin_url("/raw/plain.png"), origin_url("/raw/shouting.png").replace("http://", "HTTP://")
    raw = sa.insert(images.images).values(created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    for url in (plain, shouting, origin_url("/raw/dup.png"), origin_url("/raw/dup.png")):
        await database.execute(raw.values(url=url))
    rows = {row["url"]: int(row["id"]) for row in await database.fetch_all(sa.select(images.images))}
    assert await database.fetch_val(sa.select(sa.func.count()).where(images.images.c.url_hash.is_not(None))) == 0

    for ingested, stored in ((plain, plain), (shouting, shouting), (shouting.replace("HTTP://", "http://"), shouting)):
        answers = await asyncio.gather(*(harness.client.post(
            "/api/library/images", json={"url": ingested, "pipeline_id": "p", "step": "s"}) for _ in range(4)))
        assert {(answer.status_code, answer.json()["id"]) for answer in answers} == {(200, rows[stored])}, ingested
    # Two rows of one url: the lowest id is the one, the other stays as it is.
    dup = origin_url("/raw/dup.png")
    answer = await harness.client.post("/api/library/images", json={"url": dup, "pipeline_id": "p", "step": "s"})
    assert answer.status_code == 200 and answer.json()["id"] == min(rows[dup], rows[dup] - 1)
    assert await database.fetch_val(sa.select(sa.func.count()).select_from(images.images)) == 4
    assert (await harness.client.get("/api/library/images")).json()["total"] == 4
    new = await harness.client.post("/api/library/images", json={"url": origin_url("/raw/new.png"),
                                                                "pipeline_id": "p", "step": "s"})
    assert new.status_code == 201


async def test_the_lookup_of_rows_without_a_url_hash_is_read_from_its_index(harness: Harness) -> None:
    """Migration 0013's partial index serves it: without it every ingest of a new url scanned the table."""
    migration = importlib.import_module("library_api.migrations.versions.0013_unhashed_urls")
    assert migration.PREFIX == images.UNHASHED_PREFIX
    database = harness.api.database
    postgres = database.url.dialect == "postgresql"
    urls = ["https://h.example/a.png", "HTTPS://h.example/a.png"]
    query = sa.select(*images.LISTED).where(
        *images.UNHASHED, images.UNHASHED_PREFIX_SQL.in_(urls), images.images.c.url.in_(urls))
    dialect = postgresql.dialect() if postgres else sqlite.dialect()
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    async with database.transaction(force_rollback=True):
        if postgres:
            await database.execute("SET LOCAL enable_seqscan = off")
            plan = " ".join(str(row[0]) for row in await database.fetch_all(f"EXPLAIN {sql}"))
        else:
            plan = " ".join(str(row[3]) for row in await database.fetch_all(f"EXPLAIN QUERY PLAN {sql}"))
    assert "ix_pso_unhashed_url" in plan, plan


async def test_a_warm_outcome_lands_after_another_writer_held_sqlite_locked(
    tmp_path: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, origin_url: Any
) -> None:
    """A second connection holds BEGIN EXCLUSIVE past the busy timeout (1 s here, 15 s in production)
    while the outcome is written: the write is tried again with a backoff and lands once the lock
    goes (it was lost: the row stayed pending until a backfill); the listing answers meanwhile."""
    monkeypatch.setattr(library_api.db, "QUERY_TIMEOUT", 1.0)  # SQLite's busy timeout, read by create_database
    path = tmp_path / "locked.db"
    made = asyncio.Event()
    warm = RecordingWarmClient(hold=made)
    api = create_api(make_settings(database_url=f"sqlite:///{path}"), warm)
    async with api.component.lifespan():
        transport = httpx.ASGITransport(app=mount_api(api))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answer = await client.post("/api/library/images",
                                       json={"url": origin_url("/locked.png"), "pipeline_id": "p", "step": "s"})
            assert answer.status_code == 201
            await asyncio.wait_for(warm.entered.wait(), 5)
            held, released = threading.Event(), threading.Event()

            def hold_the_lock() -> None:
                connection = sqlite3.connect(path, isolation_level=None)
                try:
                    connection.execute("BEGIN EXCLUSIVE")
                    held.set()
                    time.sleep(LOCK_SECONDS)
                    connection.execute("COMMIT")
                finally:
                    connection.close()
                    released.set()

            locker = threading.Thread(target=hold_the_lock)
            locker.start()
            try:
                assert await asyncio.to_thread(held.wait, 5)
                made.set()  # the thumbnail is made now: its outcome meets the lock
                slowest = 0.0
                while not released.is_set():
                    started = time.monotonic()
                    page = (await client.get("/api/library/images")).json()
                    slowest = max(slowest, time.monotonic() - started)
                    if not released.is_set():
                        assert page["images"][0]["thumbnail_status"] == "pending"
                    await asyncio.sleep(0.2)
            finally:
                await asyncio.to_thread(locker.join)
            assert slowest < 0.5, slowest  # the listing is not held by the waiting write
            await asyncio.wait_for(api.ingest.idle(), 20)
            page = (await client.get("/api/library/images")).json()
    assert [image["thumbnail_status"] for image in page["images"]] == ["ready"]
