"""A database that holds a query forever (a locked table, a server that stopped answering) is a 503.

Before the statement timeout, a PostgreSQL table locked by a migration or an operator (and a
frozen server) held the listing and ingest until the lock went: the request never answered.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest

import library_api.db
from library_api.app import create_api, mount_api
from library_api.db import is_sqlite, sqlite_path
from tests.api.warm import RecordingWarmClient
from thumbs.settings import Settings

# Well under the test's own bound: the answer must come from the product's timeout.
QUERY_TIMEOUT = 1.0
ANSWER_WITHIN = 8.0


@asynccontextmanager
async def table_locked(database_url: str) -> AsyncIterator[None]:
    """Another client holds the images table as a migration rewriting it would."""
    if is_sqlite(database_url):
        connection = sqlite3.connect(sqlite_path(database_url), isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    pg = await asyncpg.connect(database_url)
    try:
        transaction = pg.transaction()
        await transaction.start()
        await pg.execute("LOCK TABLE pipeline_step_outputs IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await transaction.rollback()
    finally:
        await pg.close()


async def answer(request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    return await asyncio.wait_for(request(), ANSWER_WITHIN)


@pytest.mark.timeout(60)
async def test_a_locked_table_is_a_503_not_a_request_that_never_answers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library_api.db, "QUERY_TIMEOUT", QUERY_TIMEOUT)
    api = create_api(settings, RecordingWarmClient())
    body = {"url": settings.allowed_sources[0].join(["http://", "/locked.jpg"]), "pipeline_id": "p", "step": "s"}
    async with api.component.lifespan():
        transport = httpx.ASGITransport(app=mount_api(api))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/api/library/images")).status_code == 200
            async with table_locked(settings.database_url):
                listing = await answer(lambda: client.get("/api/library/images?limit=5"))
                ingest = await answer(lambda: client.post("/api/library/images", json=body))
            if is_sqlite(settings.database_url):
                assert listing.status_code == 200  # WAL: readers never wait for a writer
            else:
                assert listing.status_code == 503, listing.text
                assert listing.json()["error"] == "database_unavailable"
                assert listing.headers["retry-after"]
            assert ingest.status_code == 503, ingest.text
            assert ingest.json()["error"] == "database_unavailable"
            # The lock is gone: the same process answers again, nothing to restart.
            after = await answer(lambda: client.post("/api/library/images", json=body))
            assert after.status_code == 201, after.text
            listed = (await client.get("/api/library/images")).json()
            assert [image["url"] for image in listed["images"]] == [body["url"]]
            assert listed["total"] == 1
