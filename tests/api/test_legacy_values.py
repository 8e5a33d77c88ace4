"""Legacy values migration 0005 must survive: any created_at, rows without a url, junk written later."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from library_api.app import create_api, mount_api
from library_api.backfill import run_backfill
from library_api.db import EPOCH
from library_api.migrate import run_migrations
from tests.api.conftest import in_thread
from tests.api.test_migrations import legacy_pg  # noqa: F401  (fixture)
from tests.api.warm import RecordingWarmClient
from thumbs.settings import Settings

IMAGES = "/api/library/images"
MAY_1 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(settings, RecordingWarmClient())
    async with api.component.lifespan():
        transport = httpx.ASGITransport(app=mount_api(api))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def walk(client: httpx.AsyncClient, limit: int, *, by: str, **extra: str) -> tuple[list[dict[str, Any]], int]:
    """Every page by offset or by cursor (with ``extra`` parameters: filters); each answer must be a 200."""
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit, **extra}
    while True:
        response = await client.get(IMAGES, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["images"]
        if page["next_cursor"] is None:
            return seen, page["total"]
        if by == "cursor":
            params = {"limit": limit, "cursor": page["next_cursor"], **extra}
        else:
            params = {"limit": limit, "offset": len(seen), **extra}


def assert_listing_order(images: list[dict[str, Any]]) -> None:
    """Dated images newest first (ties by id), then undated ones by id, newest first."""
    dated = [image for image in images if image["created_at"] is not None]
    undated = [image for image in images if image["created_at"] is None]
    assert images == dated + undated
    keys = [(dt.datetime.fromisoformat(image["created_at"]), image["id"]) for image in dated]
    assert keys == sorted(keys, reverse=True)
    assert [image["id"] for image in undated] == sorted((image["id"] for image in undated), reverse=True)


SQLITE_VALUES: list[tuple[object, dt.datetime | None]] = [
    (1714564800123, MAY_1 + dt.timedelta(milliseconds=123)),  # JavaScript Date.now()
    (1714564800, MAY_1),  # epoch seconds
    (1714564800.5, MAY_1 + dt.timedelta(milliseconds=500)),
    ("1714564800123", MAY_1 + dt.timedelta(milliseconds=123)),
    ("2024-05-01T12:00:00Z", MAY_1),
    ("2024-05-01T14:00:00+02:00", MAY_1),
    ("2024-05-01 12:00:00", MAY_1),
    ("Wed, 01 May 2024 12:00:00 GMT", MAY_1),
    (b"2024-05-01T12:00:00", MAY_1),
    ("not a date", None),
    (None, None),
    (1e30, None),
    ("1" * 30, None),
    (2**63 - 1, EPOCH + dt.timedelta(seconds=(2**63 - 1) / 1e9)),  # the largest SQLite integer: nanoseconds
    (float("inf"), None),
    ("", None),
    (b"\xff\xfe", None),
    (0, None),  # the epoch 0: "no date" (what 0002 wrote for NULL)
]


def make_sqlite_legacy(path: Path, base: str) -> None:
    connection = sqlite3.connect(path)
    connection.execute(
        """CREATE TABLE pipeline_step_outputs (
               id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT, created_at TIMESTAMP, pipeline_id TEXT, step TEXT)"""
    )
    for n, (value, _) in enumerate(SQLITE_VALUES):
        connection.execute(
            "INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) VALUES (?, ?, 'p', 's')",
            (f"{base}/legacy/{n}.jpg", value),
        )
    connection.execute("INSERT INTO pipeline_step_outputs (url, created_at) VALUES (NULL, '2024-05-02')")
    connection.execute("INSERT INTO pipeline_step_outputs (url, created_at) VALUES (NULL, 'junk')")
    connection.commit()
    connection.close()


async def test_sqlite_legacy_dates_are_normalised_or_null(tmp_path: Path, make_settings: Any, origin: Any) -> None:
    path = tmp_path / "legacy.db"
    make_sqlite_legacy(path, origin.base_url)
    settings = make_settings(database_url=f"sqlite:///{path}")
    run_migrations(settings)
    run_migrations(settings)  # twice is a no-op

    async with client_for(settings) as client:
        by_offset, total = await walk(client, 4, by="offset")
        by_cursor, cursor_total = await walk(client, 3, by="cursor")
    assert by_offset == by_cursor
    assert total == cursor_total == len(SQLITE_VALUES) == len(by_offset)  # rows without a url: not listed
    assert_listing_order(by_offset)
    expected = {n + 1: want for n, (_, want) in enumerate(SQLITE_VALUES)}
    got = {image["id"]: image["created_at"] for image in by_offset}
    assert got == {key: None if want is None else want.isoformat() for key, want in expected.items()}

    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT thumbnail_status, thumbnail_error FROM pipeline_step_outputs WHERE url IS NULL"
        ).fetchall()
        kinds = connection.execute("SELECT DISTINCT typeof(created_at) FROM pipeline_step_outputs").fetchall()
    finally:
        connection.close()
    assert len(rows) == 2 and all(status == "failed" and error.startswith("no_url") for status, error in rows)
    assert {kind for (kind,) in kinds} == {"text", "null"}


async def test_sqlite_junk_written_after_the_migration_is_normalised_or_read_as_null(
    tmp_path: Path, make_settings: Any, origin: Any
) -> None:
    path = tmp_path / "library.db"
    settings = make_settings(database_url=f"sqlite:///{path}")
    run_migrations(settings)  # a table made by 0001 (created_at NOT NULL): 0005 rebuilds it without
    connection = sqlite3.connect(path)
    later = [1714564800123, "junk", "2024-05-01T14:00:00+02:00", 1714564800.25, b"\x00"]
    for n, value in enumerate(later):
        connection.execute(
            "INSERT INTO pipeline_step_outputs (url, created_at) VALUES (?, ?)", (f"{origin.base_url}/{n}.jpg", value)
        )
    connection.commit()
    stored = [row[0] for row in connection.execute("SELECT created_at FROM pipeline_step_outputs ORDER BY id")]
    assert stored == [
        "2024-05-01 12:00:00.123000",
        None,
        "2024-05-01 12:00:00.000000",
        "2024-05-01 12:00:00.250000",
        None,
    ]
    # A writer that bypasses the trigger (dropped here) still cannot break the listing.
    connection.execute("DROP TRIGGER pso_created_at_insert")
    connection.execute(
        "INSERT INTO pipeline_step_outputs (url, created_at) VALUES (?, 'still junk')", (f"{origin.base_url}/x.jpg",)
    )
    connection.execute("INSERT INTO pipeline_step_outputs (url, created_at) VALUES (?, 17)", (f"{origin.base_url}/y",))
    connection.commit()
    connection.close()
    async with client_for(settings) as client:
        for by in ("offset", "cursor"):
            images, total = await walk(client, 2, by=by)
            assert total == 7
            assert {image["id"] for image in images} <= set(range(1, 8))


async def test_sqlite_rebuild_keeps_indexes_and_the_counter_triggers(tmp_path: Path, make_settings: Any) -> None:
    path = tmp_path / "library.db"
    run_migrations(make_settings(database_url=f"sqlite:///{path}"))
    connection = sqlite3.connect(path)
    try:
        names = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE sql IS NOT NULL")}
        columns = {row[1]: row[3] for row in connection.execute("PRAGMA table_info(pipeline_step_outputs)")}
        connection.execute("INSERT INTO pipeline_step_outputs (url, created_at) VALUES ('http://a/1', NULL)")
        counter = connection.execute("SELECT value FROM library_counters").fetchone()[0]
        plan = " ".join(
            str(row)
            for row in connection.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM pipeline_step_outputs WHERE thumbnail_status <> 'ready' "
                "ORDER BY created_at DESC, id DESC"
            )
        )
    finally:
        connection.close()
    assert {"ix_pso_created_id", "ix_pso_unready", "ux_pso_url_hash", "ix_pso_no_url"} <= names
    assert {"pso_count_insert", "pso_count_delete", "pso_created_at_insert", "pso_created_at_update"} <= names
    assert columns["created_at"] == 0  # nullable now
    assert counter == 1
    assert "ix_pso_unready" in plan  # the partial index came back with its WHERE


@pytest.mark.parametrize(
    ("column_type", "values"),
    [
        ("text", ["1714564800123", "2024-05-01T12:00:00Z", "not a date", "now", None, "2024-05-01 14:00:00+02"]),
        ("bigint", [1714564800123, 1714564800, None, 10**18, 0, -(2**63)]),
        ("double precision", [1714564800.5, None, float("inf"), float("nan"), 1e300]),
        ("timestamp", [dt.datetime(2024, 5, 1, 12), None, "infinity", "-infinity"]),
    ],
)
async def test_postgresql_legacy_dates_of_any_column_type(
    legacy_pg: str,  # noqa: F811
    make_settings: Any,
    origin: Any,
    column_type: str,
    values: list[Any],
) -> None:
    connection = await asyncpg.connect(legacy_pg)
    try:
        await connection.execute(
            f"""CREATE TABLE pipeline_step_outputs (
                   id serial PRIMARY KEY, url text, created_at {column_type}, pipeline_id integer, step text)"""
        )
        for n, value in enumerate(values):
            cast = "$2::text::timestamp" if column_type == "timestamp" else "$2"
            await connection.execute(
                f"INSERT INTO pipeline_step_outputs (url, created_at) VALUES ($1, {cast})",
                f"{origin.base_url}/{n}.jpg",
                str(value) if column_type == "timestamp" and value is not None else value,
            )
        await connection.execute("INSERT INTO pipeline_step_outputs (url) VALUES (NULL)")
    finally:
        await connection.close()
    settings = make_settings(database_url=legacy_pg)
    in_thread(lambda: run_migrations(settings))
    in_thread(lambda: run_migrations(settings))

    async with client_for(settings) as client:
        by_offset, total = await walk(client, 2, by="offset")
        by_cursor, _ = await walk(client, 2, by="cursor")
    assert by_offset == by_cursor and total == len(values) == len(by_offset)
    assert_listing_order(by_offset)
    # Every legacy form of 2024-05-01 12:00 UTC was read as that; the rest is readable or NULL.
    dates = {dt.datetime.fromisoformat(image["created_at"]) for image in by_offset if image["created_at"]}
    assert dates & {MAY_1, MAY_1 + dt.timedelta(milliseconds=123), MAY_1 + dt.timedelta(milliseconds=500)}
    assert not any(image["created_at"].startswith("1970-01-01") for image in by_offset if image["created_at"])

    connection = await asyncpg.connect(legacy_pg)
    try:
        kind = await connection.fetchval(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'pipeline_step_outputs' AND column_name = 'created_at'"
        )
        # A legacy writer adding an unreadable date later: the trigger makes it NULL.
        await connection.execute(
            "INSERT INTO pipeline_step_outputs (url, created_at) VALUES ('http://a/b', 'infinity')"
        )
        late = await connection.fetchval("SELECT created_at FROM pipeline_step_outputs WHERE url = 'http://a/b'")
        no_url = await connection.fetchrow(
            "SELECT thumbnail_status, thumbnail_error FROM pipeline_step_outputs WHERE url IS NULL"
        )
    finally:
        await connection.close()
    assert kind == "timestamp with time zone"
    assert late is None
    assert no_url["thumbnail_status"] == "failed" and no_url["thumbnail_error"].startswith("no_url")


async def test_sqlite_values_no_reader_expects_never_break_the_listing_or_the_backfill(
    tmp_path: Path, make_settings: Any, origin: Any
) -> None:
    path = tmp_path / "legacy.db"
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE pipeline_step_outputs (id INTEGER PRIMARY KEY, url TEXT, created_at TEXT, pipeline_id, step)"
    )
    # Text that is not UTF-8 (a C writer's bytes), before and after the migration.
    connection.execute(
        "INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) "
        "VALUES (CAST(x'687474703a2f2f6aff2e6a7067' AS TEXT), '2024-05-01', CAST(x'ff' AS TEXT), 1.5)"
    )
    connection.commit()
    connection.close()
    settings = make_settings(database_url=f"sqlite:///{path}")
    run_migrations(settings)
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO pipeline_step_outputs (url, created_at, width, height, color, thumbnail_status) "
        "VALUES (CAST(x'687474703a2f2fff' AS TEXT), '2024-05-02', 'wide', 1e300, 5, 'weird')"
    )
    connection.execute(
        "INSERT INTO pipeline_step_outputs (url, created_at, width, color) VALUES (?, '2024-05-03', 640, '#abcdef')",
        (f"{origin.base_url}/fine.jpg",),
    )
    connection.commit()
    connection.close()
    async with client_for(settings) as client:
        for by in ("offset", "cursor"):
            images, total = await walk(client, 1, by=by)
            assert total == 3 and [image["id"] for image in images] == [3, 2, 1]
    assert images[0]["width"] == 640 and images[0]["color"] == "#abcdef" and images[0]["thumbnail_url"]
    assert images[1]["width"] is None and images[1]["color"] is None and images[1]["thumbnail_status"] == "pending"
    assert images[1]["url"] == "http://\ufffd" and images[1]["thumbnail_url"] is None
    assert images[2]["pipeline_id"] == "\ufffd" and images[2]["step"] == "1.5"
    progress = await run_backfill(settings, RecordingWarmClient(), retry_delays=(0.0,))
    assert progress.status == "done" and (progress.done, progress.failed) == (1, 2)
