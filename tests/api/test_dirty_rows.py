"""Dirty rows the auditor found past migrations 0001-0006: impossible dates, big cursor ids, ids that are not keys.

Each listing is walked by offset and by cursor (they must agree and reach every row) and the
backfill must walk every row too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import sqlalchemy as sa
from alembic import command

from library_api import images
from library_api.backfill import run_backfill
from library_api.migrate import alembic_config, run_migrations, use_wal
from library_api.paging import MAX_LABEL_LENGTH
from tests.api.conftest import Harness, in_thread
from tests.api.legacy import create_legacy_table, fresh_database
from tests.api.test_legacy_values import IMAGES, client_for, walk
from tests.api.test_migrations import legacy_pg  # noqa: F401  (fixture)
from tests.api.warm import RecordingWarmClient

DATES = [
    "2025-03-01 10:00:00.000000",
    "2025-02-30 10:00:00.000000",
    "2025-01-01 10:00:00.000000",
    "2024-12-01 10:00:00.000000",
]


@contextlib.asynccontextmanager
async def postgresql(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


def sqlite_insert(path: Path, base: str, created_at: Sequence[object]) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.executemany(
            "INSERT INTO pipeline_step_outputs (url, created_at) VALUES (?, ?)",
            [(f"{base}/{n}.jpg", value) for n, value in enumerate(created_at)],
        )
        connection.commit()
    finally:
        connection.close()


def sqlite_dates(path: Path) -> list[object]:
    connection = sqlite3.connect(path)
    try:
        return [value for (value,) in connection.execute("SELECT created_at FROM pipeline_step_outputs ORDER BY id")]
    finally:
        connection.close()


async def assert_every_row_reachable(settings: Any, expected_ids: set[int]) -> list[dict[str, Any]]:
    async with client_for(settings) as client:
        by_offset, total = await walk(client, 1, by="offset")
        by_cursor, _ = await walk(client, 1, by="cursor")
    assert by_cursor == by_offset
    assert {image["id"] for image in by_cursor} == expected_ids and total == len(expected_ids)
    assert len(by_cursor) == len(expected_ids)
    progress = await run_backfill(settings, RecordingWarmClient(), batch_size=1, retry_delays=(0.0,))
    assert progress.status == "done" and progress.done + progress.failed == progress.total == len(expected_ids)
    return by_cursor


async def test_sqlite_an_impossible_date_written_later_is_null_and_hides_nothing(
    tmp_path: Path, make_settings: Any, origin: Any
) -> None:
    path = tmp_path / "library.db"
    settings = make_settings(database_url=f"sqlite:///{path}")
    run_migrations(settings)
    sqlite_insert(path, origin.base_url, [*DATES, "now", "2025-02-29T10:00:00Z", "2025-02-28 24:00:00.000000"])
    assert sqlite_dates(path) == [DATES[0], None, DATES[2], DATES[3], None, None, None]
    images = await assert_every_row_reachable(settings, set(range(1, 8)))
    assert [image["id"] for image in images] == [1, 3, 4, 7, 6, 5, 2]


async def test_sqlite_impossible_dates_already_stored_become_null(
    tmp_path: Path, make_settings: Any, origin: Any
) -> None:
    path = tmp_path / "library.db"
    settings = make_settings(database_url=f"sqlite:///{path}")
    use_wal(path)
    command.upgrade(alembic_config(settings), "0006")  # a database migrated before the fix
    sqlite_insert(path, origin.base_url, DATES)
    assert sqlite_dates(path) == DATES  # 0005's trigger kept the impossible one
    run_migrations(settings)
    assert sqlite_dates(path) == [DATES[0], None, DATES[2], DATES[3]]
    await assert_every_row_reachable(settings, {1, 2, 3, 4})


async def test_sqlite_junk_that_bypassed_the_triggers_is_walked_in_storage_order(
    tmp_path: Path, make_settings: Any, origin: Any
) -> None:
    path = tmp_path / "library.db"
    settings = make_settings(database_url=f"sqlite:///{path}")
    run_migrations(settings)
    connection = sqlite3.connect(path)
    connection.execute("DROP TRIGGER pso_created_at_insert")  # a writer on a copy without the triggers
    connection.commit()
    connection.close()
    # Text junk sorts above every date, numbers below all of them: the reader parses 17 and 16 as dates.
    sqlite_insert(path, origin.base_url, [DATES[0], "still junk", DATES[1], 17, 16, None, DATES[2]])
    images = await assert_every_row_reachable(settings, set(range(1, 8)))
    assert [image["id"] for image in images] == [2, 1, 3, 7, 4, 5, 6]


async def test_sqlite_now_is_null_as_on_postgresql(tmp_path: Path, make_settings: Any, origin: Any) -> None:
    path = tmp_path / "library.db"
    run_migrations(make_settings(database_url=f"sqlite:///{path}"))
    sqlite_insert(path, origin.base_url, ["now", "NOW", "10:00"])
    assert sqlite_dates(path) == [None, None, None]


def cursor(created_at: str | None, image_id: int, offset: int = 0) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, image_id, offset])).rstrip(b"=").decode()


async def test_postgresql_serial_id_and_cursor_ids_past_int4(
    legacy_pg: str,  # noqa: F811
    make_settings: Any,
    origin: Any,
) -> None:
    async with postgresql(legacy_pg) as connection:
        await connection.execute(
            "CREATE TABLE pipeline_step_outputs (id serial PRIMARY KEY, url text, created_at timestamp, "
            "pipeline_id text, step text)"
        )
        await connection.execute(
            "INSERT INTO pipeline_step_outputs (url, created_at) VALUES ($1, '2025-01-01'), ($2, NULL)",
            f"{origin.base_url}/a.jpg",
            f"{origin.base_url}/b.jpg",
        )
    settings = make_settings(database_url=legacy_pg)
    in_thread(lambda: run_migrations(settings))
    big = 2**31
    async with client_for(settings) as client:
        for name, value, ids in [
            ("cursor", cursor(None, big), [2]),
            ("cursor", cursor("2025-06-01T00:00:00+00:00", big), [1, 2]),
            ("until", cursor(None, big), [2]),
            ("until", cursor("2025-01-01T00:00:00+00:00", big), [1, 2]),
            ("newer_than", cursor(None, big), [1]),
            ("newer_than", cursor("2024-01-01T00:00:00+00:00", 2**63 - 1), [1]),
        ]:
            response = await client.get(IMAGES, params={name: value})
            assert response.status_code == 200, (name, value, response.text)
            assert [image["id"] for image in response.json()["images"]] == ids, (name, value)


@pytest.mark.parametrize("id_column", ["id integer", "id serial", "id integer GENERATED BY DEFAULT AS IDENTITY"])
async def test_postgresql_table_without_a_primary_key_gets_unique_ids(
    legacy_pg: str,  # noqa: F811
    make_settings: Any,
    origin: Any,
    id_column: str,
) -> None:
    async with postgresql(legacy_pg) as connection:
        await connection.execute(
            f"CREATE TABLE pipeline_step_outputs ({id_column}, url text, created_at timestamptz, "
            "pipeline_id text, step text)"
        )
        rows: list[tuple[int | None, str]] = [(1, "first"), (1, "repeat"), (2, "other"), (2, "other"), (7, "hand-set")]
        if id_column == "id integer":  # serial and identity columns are NOT NULL
            rows.append((None, "null-id"))
        await connection.executemany(
            "INSERT INTO pipeline_step_outputs (id, url, created_at) VALUES ($1, $2, '2025-01-01 10:00+00')",
            [(image_id, f"{origin.base_url}/{name}.jpg") for image_id, name in rows],
        )
    settings = make_settings(database_url=legacy_pg)
    in_thread(lambda: run_migrations(settings))
    in_thread(lambda: run_migrations(settings))  # twice is a no-op

    async with postgresql(legacy_pg) as connection:
        stored = await connection.fetch("SELECT id, url, url_hash FROM pipeline_step_outputs ORDER BY id")
    ids = [row["id"] for row in stored]
    assert len(stored) == len(rows) and None not in ids and len(set(ids)) == len(ids)  # every row kept
    assert sorted(row["url"].rsplit("/", 1)[1] for row in stored) == sorted(f"{name}.jpg" for _, name in rows)
    assert {row["url"] for row in stored if row["url_hash"]} == {row["url"] for row in stored}  # each url deduped
    async with client_for(settings) as client:
        by_offset, total = await walk(client, 1, by="offset")
        by_cursor, _ = await walk(client, 1, by="cursor")
        assert by_cursor == by_offset and total == len(rows) == len(by_cursor)
        added = await client.post(IMAGES, json={"url": f"{origin.base_url}/new.jpg", "pipeline_id": "p", "step": "s"})
        assert added.status_code == 201 and added.json()["id"] not in ids
    progress = await run_backfill(settings, RecordingWarmClient(), batch_size=2, retry_delays=(0.0,))
    assert progress.status == "done" and progress.done + progress.failed == progress.total >= len(rows)
    async with postgresql(legacy_pg) as connection:
        ready = await connection.fetchval("SELECT count(*) FROM pipeline_step_outputs WHERE thumbnail_status = 'ready'")
    assert ready == len(rows) + 1  # every legacy row and the new one: nothing left pending


async def test_postgresql_null_and_repeated_ids_in_a_database_migrated_before_the_fix(
    legacy_pg: str,  # noqa: F811
    make_settings: Any,
    origin: Any,
) -> None:
    """The auditor's case: 0001-0006 succeed on it, then every listing was a 500 and the backfill stalled."""
    async with postgresql(legacy_pg) as connection:
        await connection.execute(
            "CREATE TABLE pipeline_step_outputs (id integer, url text, created_at timestamptz, "
            "pipeline_id text, step text)"
        )
        await connection.executemany(
            "INSERT INTO pipeline_step_outputs (id, url, created_at) VALUES ($1, $2, '2025-01-01 10:00+00')",
            [(None, f"{origin.base_url}/a.jpg"), (1, f"{origin.base_url}/b.jpg"), (1, f"{origin.base_url}/c.jpg")],
        )
    settings = make_settings(database_url=legacy_pg)
    in_thread(lambda: command.upgrade(alembic_config(settings), "0006"))
    in_thread(lambda: run_migrations(settings))
    await assert_every_row_reachable(settings, {1, 2, 3})


@pytest.mark.parametrize(
    "columns",
    [
        "url text, pipeline_id integer, step integer",
        "url varchar(40), pipeline_id varchar(4), step char(3)",
        "url text, pipeline_id bigint, step jsonb",
    ],
)
async def test_postgresql_label_and_url_columns_of_other_types_take_text(
    legacy_pg: str,  # noqa: F811
    make_settings: Any,
    origin: Any,
    columns: str,
) -> None:
    """A legacy writer's integer or short varchar label columns: filters, ingest and listing all work."""
    async with postgresql(legacy_pg) as connection:
        await connection.execute(
            f"CREATE TABLE pipeline_step_outputs (id serial PRIMARY KEY, {columns}, created_at timestamptz)"
        )
        step = "'7'::jsonb" if "jsonb" in columns else "7"
        await connection.execute(
            "INSERT INTO pipeline_step_outputs (url, pipeline_id, step, created_at) "
            f"VALUES ('http://o.test/a.jpg', 12, {step}, '2025-01-01 10:00+00')"
        )
    settings = make_settings(database_url=legacy_pg)
    in_thread(lambda: run_migrations(settings))
    in_thread(lambda: run_migrations(settings))  # twice is a no-op
    long_url = f"{origin.base_url}/{'n' * 60}.jpg"
    async with client_for(settings) as client:
        for params in ({"pipeline_id": "p1"}, {"step": "upscale"}, {"pipeline_id": "12"}, {}):
            response = await client.get(IMAGES, params=params)
            assert response.status_code == 200, (params, response.text)
        assert [image["pipeline_id"] for image in response.json()["images"]] == ["12"]
        assert (await client.get(IMAGES, params={"pipeline_id": "12", "step": "7"})).json()["total"] == 1
        added = await client.post(IMAGES, json={"url": long_url, "pipeline_id": "pipeline-one", "step": "upscale"})
        assert added.status_code == 201, added.text
        listed = (await client.get(IMAGES, params={"pipeline_id": "pipeline-one"})).json()["images"]
        assert [(image["url"], image["step"]) for image in listed] == [(long_url, "upscale")]
    async with postgresql(legacy_pg) as connection:
        kept = await connection.fetchrow("SELECT url, pipeline_id, step FROM pipeline_step_outputs WHERE id = 1")
    assert tuple(kept) == ("http://o.test/a.jpg", "12", "7")  # the legacy row's values, as text


# A table with no id at all never got past 0002, so it has no "migrated before the fix" case.
@pytest.mark.parametrize(
    ("id_column", "migrated_before_the_fix"),
    [
        (column, before)
        for column in ["id INTEGER", "id INT PRIMARY KEY", "id TEXT", "id BIGINT NOT NULL DEFAULT 0"]
        for before in (False, True)
    ]
    + [(None, False)],
)
async def test_sqlite_table_whose_id_is_not_the_rowid_gets_unique_ids(
    tmp_path: Path,
    make_settings: Any,
    origin: Any,
    monkeypatch: pytest.MonkeyPatch,
    id_column: str | None,
    migrated_before_the_fix: bool,
) -> None:
    """Its NULL, repeated and non-integer ids became 500s in the listing, and ingest gave new rows no id."""
    path = tmp_path / "library.db"
    connection = sqlite3.connect(path)
    id_definition = f"{id_column}, " if id_column else ""
    connection.execute(
        f"CREATE TABLE pipeline_step_outputs ({id_definition}url TEXT NOT NULL, created_at TIMESTAMP, "
        "pipeline_id TEXT DEFAULT 'legacy', step TEXT)"
    )
    connection.execute("CREATE INDEX legacy_by_step ON pipeline_step_outputs (step)")
    ids: list[object] = [7, 7, None, "x", "3", 3.5] if id_column and "PRIMARY KEY" not in id_column else [7, 8, 1, 2]
    if id_column and "NOT NULL" in id_column:
        ids = [7, 7, 0, 0]
    rows = [(image_id, f"{origin.base_url}/{n}.jpg", f"2025-01-0{n + 1} 10:00:00") for n, image_id in enumerate(ids)]
    if id_column:
        connection.executemany("INSERT INTO pipeline_step_outputs (id, url, created_at) VALUES (?, ?, ?)", rows)
    else:
        connection.executemany(
            "INSERT INTO pipeline_step_outputs (url, created_at) VALUES (?, ?)", [r[1:] for r in rows]
        )
    connection.commit()
    connection.close()
    settings = make_settings(database_url=f"sqlite:///{path}")
    if migrated_before_the_fix:
        with monkeypatch.context() as patched:
            patched.setattr("library_api.migrations.legacy_ids.repair_sqlite_ids", lambda raw: None)
            in_thread(lambda: command.upgrade(alembic_config(settings), "0007"))
    in_thread(lambda: run_migrations(settings))
    in_thread(lambda: run_migrations(settings))  # twice is a no-op

    connection = sqlite3.connect(path)
    try:
        stored = connection.execute("SELECT id, url, pipeline_id FROM pipeline_step_outputs ORDER BY id").fetchall()
        indexes = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        connection.close()
    stored_ids = [image_id for image_id, _, _ in stored]
    assert sorted(url for _, url, _ in stored) == sorted(url for _, url, _ in rows)  # every row kept
    assert all(type(image_id) is int for image_id in stored_ids) and len(set(stored_ids)) == len(rows)
    assert {"legacy_by_step", "ix_pso_created_id", "ux_pso_url_hash"} <= indexes
    assert {pipeline for _, _, pipeline in stored} == {"legacy"}  # the column default came along
    if id_column == "id INTEGER":
        kept = {url.rsplit("/", 1)[1]: image_id for image_id, url, _ in stored}
        assert kept["0.jpg"] == 7 and kept["4.jpg"] == 3  # the first 7 and the text '3' keep their ids
    await assert_every_row_reachable(settings, set(stored_ids))
    async with client_for(settings) as client:
        added = await client.post(IMAGES, json={"url": f"{origin.base_url}/new.jpg", "pipeline_id": "p", "step": "s"})
        assert added.status_code == 201, added.text
        assert added.json()["id"] not in stored_ids
        listing = (await client.get(IMAGES, params={"limit": 100})).json()
    assert {image["id"] for image in listing["images"]} == {*stored_ids, added.json()["id"]} and listing[
        "total"
    ] == len(rows) + 1


async def test_rows_with_zero_and_negative_ids_are_walked_by_cursor(harness: Harness, origin_url: Any) -> None:
    """An operator's INSERT may give any id: 0 and negative ones are valid keys on both databases.
    A cursor at such a row was a 400 invalid_cursor (it took ids from 0 up only), so a cursor walk
    stopped there while an offset walk went on."""
    ids = [-(2**63), -(2**31), -5, 0]
    for n, image_id in enumerate(ids):
        await harness.api.database.execute(
            sa.insert(images.images).values(id=image_id, url=origin_url(f"/negative/{n}.png"), pipeline_id="p",
                                            step="s", created_at=dt.datetime(2024, 1, 1 + n, tzinfo=dt.UTC)))
    await harness.add(origin_url("/negative/ingested.png"), pipeline_id="p", step="s")
    expected = [1, 0, -5, -(2**31), -(2**63)]  # newest first: the ingested row, then the dates descending
    for limit in (1, 2):
        for by in ("offset", "cursor"):
            walked, total = await walk(harness.client, limit, by=by)
            assert [image["id"] for image in walked] == expected and total == len(expected), (limit, by)
        filtered, total = await walk(harness.client, limit, by="cursor", pipeline_id="p")
        assert [image["id"] for image in filtered] == expected and total == len(expected), limit
    for at, image_id in enumerate(expected):
        head = (await harness.client.get(IMAGES, params={"offset": at, "limit": 1})).json()["head_cursor"]
        under = await harness.client.get(IMAGES, params={"until": head, "limit": 200})
        assert [image["id"] for image in under.json()["images"]] == expected[at:], image_id
        newer = await harness.client.get(IMAGES, params={"newer_than": head})
        assert newer.status_code == 200 and newer.json()["count"] == at, image_id
    await asyncio.wait_for(harness.api.ingest.idle(), 5)
    progress = await run_backfill(harness.settings, RecordingWarmClient(), batch_size=1, retry_delays=(0.0,))
    assert progress.status == "done" and progress.done == progress.total == len(ids)
    walked, _ = await walk(harness.client, 200, by="offset")
    assert {image["thumbnail_status"] for image in walked} == {"ready"}


async def test_labels_longer_than_any_filter_are_listed_as_null(harness: Harness, origin_url: Any) -> None:
    """A legacy label may be a JSON blob of megabytes: it was sent whole, so 50 rows with a 1 MB step
    made a 50 MB page. Labels over MAX_LABEL_LENGTH characters (what ingest stores and the filters
    take) are null in the listing, decided in the database; the rows are listed, nothing stored changes."""
    labels = ["é" * MAX_LABEL_LENGTH, "x" * (MAX_LABEL_LENGTH + 1), "é" * (MAX_LABEL_LENGTH + 1), "{}" * 500_000,
              "tab\there\x01"]
    for n, label in enumerate(labels):
        await harness.api.database.execute(
            sa.insert(images.images).values(url=origin_url(f"/labels/{n}.png"), pipeline_id=label, step=label,
                                            created_at=dt.datetime(2024, 1, 1 + n, tzinfo=dt.UTC)))
    response = await harness.client.get(IMAGES, params={"limit": 10})
    assert response.status_code == 200 and len(response.content) < 20_000, len(response.content)
    listed = {image["url"].rsplit("/", 1)[1]: (image["pipeline_id"], image["step"])
              for image in response.json()["images"]}
    assert listed == {"0.png": (labels[0], labels[0]), "1.png": (None, None), "2.png": (None, None),
                      "3.png": (None, None), "4.png": (labels[4], labels[4])}
    assert response.json()["total"] == len(labels)
    filtered = (await harness.client.get(IMAGES, params={"step": labels[0]})).json()
    assert [image["url"] for image in filtered["images"]] == [origin_url("/labels/0.png")] and filtered["total"] == 1
    stored = await harness.api.database.fetch_all(
        sa.select(images.images.c.step).order_by(images.images.c.id))  # the column itself, not the listing's
    assert [row["step"] for row in stored] == labels


# Rows an operator or another program writes straight into a migrated legacy table (SQL values).
# (id, url, created_at, pipeline_id, step, width, height); None in the id column: the table's own.
OPERATOR_ROWS: dict[str, list[tuple[str, ...]]] = {
    "sqlite": [
        ("-5", "'{o}/neg.png'", "'2024-01-01 00:00:00.000000'", "'p'", "'s'", "NULL", "NULL"),
        ("0", "'{o}/zero.png'", "'2024-01-01 00:00:01.000000'", "'p'", "'s'", "-1", "0"),
        ("NULL", "'{o}/big.png'", "'2024-01-03 00:00:00.000000'", "'p'", "'s'", str(2**63 - 1), "'abc'"),
        ("NULL", "'{o}/odd.png'", "'2999-01-01 00:00:00.000000'", "'p'", "'s'", "1.5", str(-(2**63))),
        ("NULL", "'{o}/us-date.png'", "'01/02/2024'", "'p' || char(1)", "CAST(x'ff41' AS TEXT)", "NULL", "NULL"),
        ("NULL", "'   '", "NULL", "'p'", "'s'", "NULL", "NULL"),
        ("NULL", "''", "NULL", "'p'", "'s'", "NULL", "NULL"),
        ("NULL", "NULL", "NULL", "'p'", "'s'", "NULL", "NULL"),
        ("NULL", "'{o}/' || hex(zeroblob(2500000))", "'2024-01-04'", "'p'", "'s'", "NULL", "NULL"),
        ("NULL", "'{o}/ctl' || char(1) || '.png'", "'2024-01-05'", "'p'", "'s'", "NULL", "NULL"),
        ("NULL", "CAST(x'{bad}' AS TEXT)", "'2024-01-06'", "'p'", "'s'", "NULL", "NULL"),
        (str(-(2**63)), "'{o}/min-id.png'", "'2024-01-07'", "'p'", "'s'", "NULL", "NULL"),
    ],
    "postgresql": [
        ("-5", "'{o}/neg.png'", "'2024-01-01'", "'p'", "'s'", "NULL", "NULL"),
        ("0", "'{o}/zero.png'", "'2024-01-01 00:00:01'", "'p'", "'s'", "-1", "0"),
        ("DEFAULT", "'{o}/big.png'", "'2024-01-03'", "'p'", "'s'", str(2**31 - 1), str(-(2**31))),
        ("DEFAULT", "'{o}/odd.png'", "'2999-01-01'", "'p'", "'s'", "NULL", "NULL"),
        ("DEFAULT", "'{o}/inf.png'", "'infinity'", "E'p\\x01'", "E'\\x7f'", "NULL", "NULL"),
        ("DEFAULT", "'   '", "NULL", "'p'", "'s'", "NULL", "NULL"),
        ("DEFAULT", "''", "NULL", "'p'", "'s'", "NULL", "NULL"),
        ("DEFAULT", "NULL", "NULL", "'p'", "'s'", "NULL", "NULL"),
        ("DEFAULT", "'{o}/' || repeat('a', 5000000)", "'2024-01-04'", "'p'", "'s'", "NULL", "NULL"),
        ("DEFAULT", "'{o}/ctl' || chr(1) || '.png'", "'2024-01-05'", "'p'", "'s'", "NULL", "NULL"),
        (str(-(2**31)), "'{o}/min-id.png'", "'2024-01-07'", "'p'", "'s'", "NULL", "NULL"),
    ],
}
# Listed (a web address of at most 4,096 bytes), by url suffix; the first has pipeline_id "p\x01".
OPERATOR_LISTED = {
    "sqlite": ["us-date.png", "neg.png", "zero.png", "big.png", "odd.png", "ctl\x01.png", "bad\ufffd.png",
               "min-id.png"],
    "postgresql": ["inf.png", "neg.png", "zero.png", "big.png", "odd.png", "ctl\x01.png", "min-id.png"],
}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_rows_an_operator_writes_after_the_migrations_give_clean_answers(
    kind: str, tmp_path: Path, make_settings: Any
) -> None:
    """Every listing walk (offset, cursor, filtered), newer_than, until and the backfill answer over
    rows written straight into the migrated table with every kind of dirty value (a cursor at id 0 or
    below was a 400 here); urls, dates, labels and ids are never changed."""
    origin = "http://127.0.0.1:9"
    with fresh_database(kind, tmp_path) as url:
        await create_legacy_table(url, [])
        settings = make_settings(database_url=url, allowed_sources=["127.0.0.1:9"])
        in_thread(lambda: run_migrations(settings))
        values = [
            ", ".join(value.format(o=origin, bad=(origin + "/bad").encode().hex() + "ff2e706e67") for value in row)
            for row in OPERATOR_ROWS[kind]
        ]
        inserts = [f"INSERT INTO pipeline_step_outputs (id, url, created_at, pipeline_id, step, width, height) "
                   f"VALUES ({row})" for row in values]
        await raw_statements(url, inserts)
        before = await stored_rows(url)
        async with client_for(settings) as client:
            walks = {(by, limit): await walk(client, limit, by=by)
                     for by in ("offset", "cursor") for limit in (1, 2, 5)}
            filtered, filtered_total = await walk(client, 2, by="cursor", pipeline_id="p")
            first = (await client.get(IMAGES, params={"limit": 200})).json()
            head = first["head_cursor"]
            newer = (await client.get(IMAGES, params={"newer_than": head})).json()
            under = (await client.get(IMAGES, params={"until": head, "limit": 3})).json()
        listed = [image["url"].rsplit("/", 1)[-1] for image in first["images"]]
        assert sorted(listed) == sorted(OPERATOR_LISTED[kind])
        ids = [image["id"] for image in first["images"]]
        for (by, limit), (seen, total) in walks.items():
            assert [image["id"] for image in seen] == ids and total == len(ids), (by, limit)
        assert [image["id"] for image in filtered] == [n for n, name in zip(ids, listed, strict=True)
                                                        if name != OPERATOR_LISTED[kind][0]]
        assert filtered_total == len(filtered)
        assert newer["count"] == 0 and under["until_total"] == len(ids)
        for image in first["images"]:
            assert image["width"] is None or 0 < image["width"] < 2**31
            assert image["height"] is None or 0 < image["height"] < 2**31
        for retry_failed in (False, True):
            progress = await asyncio.wait_for(run_backfill(settings, RecordingWarmClient(), batch_size=2,
                                                           retry_delays=(0.0,), retry_failed=retry_failed), 60)
            assert progress.status == "done" and progress.done + progress.failed == progress.total
        assert await stored_rows(url) == before


async def raw_statements(url: str, statements: Sequence[str]) -> None:
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split(":///", 1)[1])
        try:
            for statement in statements:
                connection.execute(statement)
            connection.commit()
        finally:
            connection.close()
        return
    async with postgresql(url) as pg:
        for statement in statements:
            await pg.execute(statement)


async def stored_rows(url: str) -> list[tuple[Any, ...]]:
    # Not width and height: the backfill writes those a warm outcome reports, as for any row.
    query = "SELECT id, url, created_at, pipeline_id, step FROM pipeline_step_outputs ORDER BY id"
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split(":///", 1)[1])
        connection.text_factory = bytes
        try:
            return [tuple(row) for row in connection.execute(query)]
        finally:
            connection.close()
    async with postgresql(url) as pg:
        return [tuple(row) for row in await pg.fetch(query)]
