"""Migrating the product's legacy ``pipeline_step_outputs`` in place: every row kept, twice is a no-op."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import random
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from library_api.app import create_api, mount_api
from library_api.migrate import run_migrations
from tests.api.conftest import in_thread
from tests.api.warm import RecordingWarmClient
from tests.conftest import PG_ADMIN_URL
from tests.support.pg import create_database, drop_database
from thumbs.settings import Settings

LEGACY_ROWS = 300
LONG_URL_BYTES = 5000  # a data: URL from a sync model call: too big for a plain btree entry
# A legacy step label that is a blob (6,000 characters that do not compress): no btree entry holds it.
LONG_STEP = base64.b64encode(random.Random(7).randbytes(4500)).decode()


def legacy_rows(base: str) -> list[tuple[str, dt.datetime | None, int | None, str]]:
    start = dt.datetime(2024, 5, 1, 12, 0, 0)
    rows: list[tuple[str, dt.datetime | None, int | None, str]] = []
    for n in range(LEGACY_ROWS):
        url = f"{base}/legacy/{n % 250}.png"  # 50 duplicate URLs, as the real table may have
        rows.append((url, start + dt.timedelta(minutes=n // 3), n % 7 or None, f"step-{n % 4}"))
    rows.append(("data:image/png;base64," + "A" * LONG_URL_BYTES, start, 1, LONG_STEP))
    rows.append((f"{base}/legacy/no-date.png", None, 2, "nodate"))
    return rows


@pytest.fixture
def legacy_pg() -> Iterator[str]:
    name = f"thumbs_legacy_{uuid.uuid4().hex[:10]}"
    in_thread(lambda: create_database(PG_ADMIN_URL, name))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        in_thread(lambda: drop_database(PG_ADMIN_URL, name))


async def pg_snapshot(url: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT id, url, pipeline_id::text, step FROM pipeline_step_outputs ORDER BY id")
        return [tuple(row) for row in rows]
    finally:
        await connection.close()


async def list_all(settings: Settings) -> tuple[list[dict[str, Any]], int]:
    api = create_api(settings, RecordingWarmClient())
    seen: list[dict[str, Any]] = []
    async with api.component.lifespan():
        transport = httpx.ASGITransport(app=mount_api(api))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            params: dict[str, Any] = {"limit": 200}
            while True:
                page = (await client.get("/api/library/images", params=params)).json()
                seen += page["images"]
                total = page["total"]
                if page["next_cursor"] is None:
                    return seen, total
                params = {"limit": 200, "cursor": page["next_cursor"]}


async def test_postgresql_legacy_table_is_migrated_in_place(legacy_pg: str, make_settings: Any, origin: Any) -> None:
    connection = await asyncpg.connect(legacy_pg)
    try:
        await connection.execute(
            """CREATE TABLE pipeline_step_outputs (
                   id serial PRIMARY KEY, url text NOT NULL, created_at timestamp DEFAULT now(),
                   pipeline_id integer, step text)"""
        )
        await connection.executemany(
            "INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) VALUES ($1, $2, $3, $4)",
            legacy_rows(origin.base_url),
        )
    finally:
        await connection.close()
    before = await pg_snapshot(legacy_pg)
    assert len(before) == LEGACY_ROWS + 2

    settings = make_settings(database_url=legacy_pg)
    in_thread(lambda: run_migrations(settings))
    assert await pg_snapshot(legacy_pg) == before  # every row, every value kept

    connection = await asyncpg.connect(legacy_pg)
    try:
        schema = await connection.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'pipeline_step_outputs'"
        )
        indexes = await connection.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'pipeline_step_outputs'")
        stats = await connection.fetchrow(
            """SELECT count(*) AS rows, count(url_hash) AS hashed, count(DISTINCT url) AS urls,
                      bool_and(thumbnail_status = 'pending') AS pending,
                      min(created_at) AS oldest, count(*) FILTER (WHERE created_at IS NULL) AS undated,
                      (SELECT value FROM library_counters WHERE name = 'images') AS counter
               FROM pipeline_step_outputs"""
        )
        first = await connection.fetchval("SELECT created_at FROM pipeline_step_outputs WHERE id = 1")
    finally:
        await connection.close()
    columns = dict(tuple(row) for row in schema)
    assert columns["created_at"] == "timestamp with time zone"
    assert {"thumbnail_url", "width", "height", "color", "thumbnail_status"} <= set(columns)
    assert {"ix_pso_created_id", "ix_pso_unready", "ux_pso_url_hash", "ix_pso_pipeline_listed",
            "ix_pso_step_listed"} <= {row["indexname"] for row in indexes}
    assert stats["rows"] == stats["counter"] == LEGACY_ROWS + 2
    assert stats["hashed"] == stats["urls"]  # one hash per distinct URL; duplicates stay listed
    assert stats["pending"] is True
    assert first == dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)  # naive legacy times were UTC
    assert stats["oldest"] == dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    assert stats["undated"] == 1  # the NULL date stays NULL (0005), listed after every dated image

    # Twice is a no-op.
    in_thread(lambda: run_migrations(settings))
    assert await pg_snapshot(legacy_pg) == before

    # Every legacy row with a web address is listed, once, with a working thumbnail URL; the
    # 5 KB data: URL is kept but not listed (migration 0011), and not counted.
    images, total = await list_all(settings)
    assert total == LEGACY_ROWS + 1
    assert sorted(image["id"] for image in images) == [row[0] for row in before if not row[1].startswith("data:")]
    assert all(image["thumbnail_url"].startswith("http://thumbs.test/t/") for image in images)
    assert images[-1]["step"] == "nodate"


async def test_sqlite_legacy_table_with_mixed_timestamp_text_is_migrated(
    tmp_path: Path, make_settings: Any, origin: Any
) -> None:
    path = tmp_path / "legacy.db"
    connection = sqlite3.connect(path)
    connection.execute(
        """CREATE TABLE pipeline_step_outputs (
               id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL, created_at TEXT,
               pipeline_id TEXT, step TEXT)"""
    )
    texts = ["2024-03-01T10:00:00Z", "2024-03-01 09:00:00", "2024-03-01T12:00:00+02:00", "2024-03-01 11:30:00.5"]
    rows = [(f"{origin.base_url}/old/{n}.jpg", texts[n % 4], f"p{n}", "s") for n in range(40)]
    connection.executemany(
        "INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) VALUES (?, ?, ?, ?)", rows
    )
    connection.commit()
    connection.close()

    settings = make_settings(database_url=f"sqlite:///{path}")
    run_migrations(settings)
    run_migrations(settings)
    images, total = await list_all(settings)
    assert total == 40 and len({image["id"] for image in images}) == 40
    # 12:00+02:00 is 10:00Z: newest first is 11:30:00.5, then both kinds of 10:00Z (by id), then 09:00.
    order = [image["created_at"] for image in images]
    assert order == (
        ["2024-03-01T11:30:00.500000+00:00"] * 10
        + ["2024-03-01T10:00:00+00:00"] * 20
        + ["2024-03-01T09:00:00+00:00"] * 10
    )
    keys = [(image["created_at"], image["id"]) for image in images]
    assert keys == sorted(keys, reverse=True)


async def test_the_api_refuses_to_start_on_an_unmigrated_postgresql(legacy_pg: str, make_settings: Any) -> None:
    api = create_api(make_settings(database_url=legacy_pg), RecordingWarmClient())
    with pytest.raises(RuntimeError, match="thumbs migrate"):
        async with api.component.lifespan():
            pass


async def test_concurrent_migrations_from_several_processes_apply_once(legacy_pg: str) -> None:
    # Alembic's context is process-global, so concurrency means processes (several `thumbs migrate`).
    code = (
        "import sys; from thumbs.settings import Settings; from library_api.migrate import run_migrations; "
        "run_migrations(Settings(_env_file=None, database_url=sys.argv[1]))"
    )
    processes = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", code, legacy_pg, stderr=asyncio.subprocess.PIPE)
        for _ in range(3)
    ]
    for process in processes:
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, stderr.decode()[-2000:]
    connection = await asyncpg.connect(legacy_pg)
    try:
        assert await connection.fetchval("SELECT count(*) FROM library_api_alembic_version") == 1
        assert await connection.fetchval("SELECT value FROM library_counters WHERE name = 'images'") == 0
    finally:
        await connection.close()


async def test_migration_0012_swaps_the_label_indexes_and_back(legacy_pg: str, tmp_path: Path) -> None:
    """0012 is reversible on both databases; on PostgreSQL its CREATE INDEX CONCURRENTLY runs outside
    the migration transaction, and a build that failed half-way (an INVALID index) is built again."""
    from alembic import command

    from library_api.migrate import alembic_config

    old = {"ix_pso_pipeline_created_id", "ix_pso_step_created_id"}
    new = {"ix_pso_pipeline_listed", "ix_pso_step_listed"}
    for url in (legacy_pg, f"sqlite:///{tmp_path / 'swap.db'}"):
        settings = Settings(_env_file=None, database_url=url)
        config = alembic_config(settings)
        in_thread(lambda: run_migrations(settings))  # noqa: B023 - called at once
        assert await label_indexes(url) == {name: True for name in new}
        in_thread(lambda: command.downgrade(config, "0011"))  # noqa: B023
        assert await label_indexes(url) == {name: True for name in old}
        in_thread(lambda: command.upgrade(config, "head"))  # noqa: B023
        assert await label_indexes(url) == {name: True for name in new}
    connection = await asyncpg.connect(legacy_pg)
    try:
        await connection.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_pso_step_listed'::regclass")
        await connection.execute("UPDATE library_api_alembic_version SET version_num = '0011'")
        # As a cancelled build leaves it: both the old index and an invalid new one.
        await connection.execute("CREATE INDEX ix_pso_step_created_id ON pipeline_step_outputs (step, created_at, id)")
    finally:
        await connection.close()
    assert await label_indexes(legacy_pg) == {"ix_pso_pipeline_listed": True, "ix_pso_step_listed": False,
                                              "ix_pso_step_created_id": True}
    in_thread(lambda: run_migrations(Settings(_env_file=None, database_url=legacy_pg)))
    assert await label_indexes(legacy_pg) == {name: True for name in new}


async def label_indexes(url: str) -> dict[str, bool]:
    """The label indexes (0009's and 0012's names) and whether each is valid."""
    names = ("ix_pso_pipeline_created_id", "ix_pso_step_created_id", "ix_pso_pipeline_listed", "ix_pso_step_listed")
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split(":///", 1)[1])
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        finally:
            connection.close()
        return {name: True for (name,) in rows if name in names}
    pg = await asyncpg.connect(url)
    try:
        rows = await pg.fetch("SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                              "WHERE c.relname = ANY($1::text[])", list(names))
    finally:
        await pg.close()
    return {row["relname"]: row["indisvalid"] for row in rows}


async def test_migration_0012_lets_writes_go_on_while_it_builds(legacy_pg: str) -> None:
    """CREATE INDEX CONCURRENTLY: while 0012 builds (here held up by a write transaction left open, as
    a long request's would), another connection's INSERT goes through at once. Behind a plain CREATE
    INDEX's SHARE lock that INSERT waits for the whole build (here: its lock_timeout)."""
    from alembic import command

    from library_api.migrate import alembic_config

    settings = Settings(_env_file=None, database_url=legacy_pg)
    in_thread(lambda: command.upgrade(alembic_config(settings), "0011"))
    holder, writer = await asyncpg.connect(legacy_pg), await asyncpg.connect(legacy_pg)
    try:
        # A writer's lock on the table (no row: nothing a second writer would wait for), which
        # either build waits for; a plain build's SHARE lock, queued behind it, holds up other writers.
        holder_transaction = holder.transaction()
        await holder_transaction.start()
        await holder.execute("UPDATE pipeline_step_outputs SET step = step WHERE id = -1")
        migration = asyncio.create_task(asyncio.to_thread(run_migrations, settings))
        for _ in range(200):  # until the build waits for the open transaction
            if await writer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX%'"
                                     " AND datname = current_database()"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("0012 never started its index build")
        await writer.execute("SET lock_timeout = '2s'")
        await writer.execute("INSERT INTO pipeline_step_outputs (url, created_at) VALUES ('https://h/w.png', now())")
        assert not migration.done()
        await holder_transaction.commit()
        await asyncio.wait_for(migration, 60)
    finally:
        await holder.close()
        await writer.close()
    assert await label_indexes(legacy_pg) == {"ix_pso_pipeline_listed": True, "ix_pso_step_listed": True}
