"""Property: ANY legacy table migrates, every page answers 200, every row with a url is listed exactly once,
and the backfill over it finishes with done + failed == total.

Hypothesis makes the legacy tables: on SQLite any value in any column (NULL, junk text, huge
integers, floats with inf/nan, bytes, real dates in many spellings); on PostgreSQL what the
legacy column types accept (timestamps including infinity, NULLs, any text, any int4).
Example counts are kept small so both run in well under a minute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from library_api.app import create_api, mount_api
from library_api.backfill import run_backfill
from library_api.db import create_database
from library_api.migrate import run_migrations
from tests.api.conftest import in_thread
from tests.api.legacy import Row, create_legacy_table, fresh_database, reset_postgresql
from tests.api.warm import RecordingWarmClient
from thumbs.settings import Settings

ORIGIN = "http://127.0.0.1:9"  # never fetched: the warm client is a recording fake
FAKE_SETTINGS = {"allowed_sources": ["127.0.0.1:9"]}
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

dates = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
date_texts = st.one_of(
    dates.map(lambda value: value.isoformat()),
    dates.map(lambda value: value.isoformat(sep=" ") + "Z"),
    dates.map(lambda value: value.strftime("%Y-%m-%d %H:%M:%S")),
    dates.map(lambda value: value.replace(tzinfo=dt.timezone(dt.timedelta(hours=5))).isoformat()),
)
epochs = st.one_of(
    st.integers(min_value=0, max_value=4_000_000_000),  # seconds
    st.integers(min_value=0, max_value=4_000_000_000_000),  # JavaScript milliseconds
    st.floats(min_value=0, max_value=4e12),
)
sqlite_any = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=24),
)
sqlite_urls = st.one_of(
    st.integers(min_value=0, max_value=30).map(lambda n: f"{ORIGIN}/img/{n}.jpg"),  # duplicates on purpose
    st.sampled_from(["not a url", "ftp://x/y", "http://", "http://[::1", "data:image/png;base64,AAAA", ""]),
    sqlite_any,
)
sqlite_dates = st.one_of(sqlite_any, date_texts, epochs, epochs.map(str), date_texts.map(str.encode))
sqlite_rows = st.lists(st.tuples(sqlite_urls, sqlite_dates, sqlite_any, sqlite_any), max_size=25)

pg_text = st.text(max_size=40).map(lambda text: text.replace("\x00", ""))  # PostgreSQL text holds no NUL
pg_rows = st.lists(
    st.tuples(
        st.one_of(st.none(), pg_text, st.integers(min_value=0, max_value=30).map(lambda n: f"{ORIGIN}/img/{n}.jpg")),
        st.one_of(st.none(), dates, st.sampled_from(["infinity", "-infinity"])),
        st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31 - 1)),
        st.one_of(st.none(), pg_text),
    ),
    max_size=25,
)


async def walk(client: httpx.AsyncClient, limit: int, by: str) -> tuple[list[int], set[int]]:
    ids: list[int] = []
    totals: set[int] = set()
    params: dict[str, Any] = {"limit": limit}
    for _ in range(200):
        response = await client.get("/api/library/images", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [image["id"] for image in page["images"]]
        totals.add(page["total"])
        for image in page["images"]:
            assert image["thumbnail_url"] is None or image["thumbnail_url"].startswith("http://thumbs.test/t/")
        if page["next_cursor"] is None:
            return ids, totals
        params = (
            {"limit": limit, "cursor": page["next_cursor"]} if by == "cursor" else {"limit": limit, "offset": len(ids)}
        )
    raise AssertionError("the walk did not end")


async def check_listing_and_backfill(settings_: Settings, with_url: set[int], limit: int) -> None:
    api = create_api(settings_, RecordingWarmClient())
    async with api.component.lifespan():
        transport = httpx.ASGITransport(app=mount_api(api))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            by_offset, offset_totals = await walk(client, limit, "offset")
            by_cursor, cursor_totals = await walk(client, limit, "cursor")
    assert by_offset == by_cursor, "offset and cursor walks disagree"
    assert len(by_offset) == len(set(by_offset)), "an image was listed twice"
    assert set(by_offset) == with_url, "a row with a web address was lost (or another row listed)"
    assert offset_totals == cursor_totals == {len(with_url)}

    for retry_failed in (False, True):
        progress = await run_backfill(
            settings_, RecordingWarmClient(), batch_size=limit, retry_delays=(0.0,), retry_failed=retry_failed
        )
        assert progress.status == "done" and progress.done + progress.failed == progress.total


def migrate_and_check(make_settings: Any, url: str, rows: list[Row], limit: int) -> None:
    note(f"rows={rows!r} limit={limit}")
    settings_ = make_settings(database_url=url, **FAKE_SETTINGS)
    # As the database stored them (SQLite keeps a float NaN as NULL, for one).
    with_url: set[int] = set()
    in_thread(lambda: with_url.update(asyncio.run(ids_with_url(url))))
    in_thread(lambda: run_migrations(settings_))
    in_thread(lambda: asyncio.run(check_listing_and_backfill(settings_, with_url, limit)))


async def ids_with_url(url: str) -> set[int]:
    database = create_database(Settings(_env_file=None, database_url=url))
    await database.connect()
    try:
        if url.startswith("sqlite"):
            query = "SELECT id, typeof(url) AS kind, CAST(url AS BLOB) AS raw FROM pipeline_step_outputs"
        else:
            query = "SELECT id, 'text' AS kind, convert_to(url, 'UTF8') AS raw FROM pipeline_step_outputs"
        rows = await database.fetch_all(query)
        return {
            int(row["id"]) for row in rows
            if row["kind"] in ("text", "blob") and row["raw"] is not None and web_address(bytes(row["raw"]))
        }
    finally:
        await database.disconnect()


def web_address(raw: bytes) -> bool:
    """What the listing takes (migration 0011): http(s) in any case, or a same-origin path; short ones only
    here (the generated values are)."""
    assert len(raw) <= 4096
    return raw[:8].lower().startswith((b"http://", b"https://")) or (raw[:1] == b"/" and raw[1:2] != b"\\")


@pytest.fixture
def pg_database(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgresql", tmp_path) as url:
        yield url


@PROPERTY
@given(rows=sqlite_rows, limit=st.integers(min_value=1, max_value=7))
def test_any_sqlite_legacy_table(tmp_path: Path, make_settings: Any, rows: list[Row], limit: int) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        in_thread(lambda: asyncio.run(create_legacy_table(url, rows)))
        migrate_and_check(make_settings, url, rows, limit)


@settings(parent=PROPERTY, max_examples=12)
@given(rows=pg_rows, limit=st.integers(min_value=1, max_value=7))
def test_any_postgresql_legacy_table(pg_database: str, make_settings: Any, rows: list[Row], limit: int) -> None:
    in_thread(lambda: asyncio.run(reset_postgresql(pg_database)))
    as_text = [(url, None if when is None else str(when), pipeline, step) for url, when, pipeline, step in rows]
    in_thread(lambda: asyncio.run(create_legacy_table(pg_database, as_text, created_at_cast="::text::timestamp")))
    migrate_and_check(make_settings, pg_database, rows, limit)


# A legacy date kept as text: anything at all, read by 0005's PostgreSQL parser (and its cast).
pg_text_dates = st.one_of(
    st.none(),
    pg_text,
    date_texts,
    epochs.map(str),
    st.sampled_from(
        ["epoch", "now", "infinity", "J2451187", "2024-05-01 BC", "200000-01-01", "allballs", "1e400", "-0", "Z"]
    ),
)


@settings(parent=PROPERTY, max_examples=12)
@given(
    dates_=st.lists(pg_text_dates, max_size=20),
    limit=st.integers(min_value=1, max_value=7),
)
def test_any_postgresql_text_dates(pg_database: str, make_settings: Any, dates_: list[str | None], limit: int) -> None:
    in_thread(lambda: asyncio.run(reset_postgresql(pg_database)))
    rows: list[Row] = [(f"{ORIGIN}/t/{n}.jpg", when, None, None) for n, when in enumerate(dates_)]
    in_thread(lambda: asyncio.run(create_legacy_table(pg_database, rows, created_at_type="text")))
    migrate_and_check(make_settings, pg_database, rows, limit)
