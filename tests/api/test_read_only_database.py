"""A read-only PostgreSQL (a standby after a failover, ``default_transaction_read_only``) is a 503.

The listing still answers from it; every write is a JSON 503 ``database_unavailable`` the client
may retry, and ``thumbs backfill`` says so in one line. Before, ingest and the backfill's POST
were 500s (asyncpg's ReadOnlySQLTransactionError) and the CLI printed a traceback.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx

from library_api.app import create_api, mount_api
from library_api.migrate import run_migrations
from tests.api.conftest import in_thread
from tests.api.legacy import fresh_database
from tests.api.warm import RecordingWarmClient
from tests.support.demo_server import clean_environment
from thumbs.settings import Settings


async def make_read_only(url: str) -> None:
    """New sessions of this database (the API's, started after this) may only read."""
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    finally:
        await connection.close()


async def test_writes_to_a_read_only_database_are_503s_and_the_listing_still_answers(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with fresh_database("postgresql", tmp_path) as url:
        settings = make_settings(database_url=url)
        in_thread(lambda: run_migrations(settings))
        source = "http://" + settings.allowed_sources[0]
        writable = create_api(settings, RecordingWarmClient())
        async with writable.component.lifespan():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mount_api(writable)),
                                         base_url="http://testserver") as client:
                stored = await client.post("/api/library/images", json={"url": source + "/kept.jpg",
                                                                        "pipeline_id": "p", "step": "s"})
                assert stored.status_code == 201, stored.text
        await make_read_only(url)

        api = create_api(settings, RecordingWarmClient())
        async with api.component.lifespan():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mount_api(api)),
                                         base_url="http://testserver") as client:
                listing = await client.get("/api/library/images")
                assert listing.status_code == 200
                assert [image["url"] for image in listing.json()["images"]] == [source + "/kept.jpg"]
                ingest = await client.post("/api/library/images", json={"url": source + "/new.jpg",
                                                                        "pipeline_id": "p", "step": "s"})
                backfill = await client.post("/api/library/generate-thumbnails",
                                             headers={"authorization": "Bearer admin-token"})
                for response in (ingest, backfill):
                    assert response.status_code == 503, response.text
                    assert response.json()["error"] == "database_unavailable"
                    assert "ReadOnlySQLTransactionError" in response.json()["detail"]
                    assert response.headers["retry-after"]

        command = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "thumbs.cli", "backfill"],
            env=clean_environment(THUMBS_DATA_DIR=str(tmp_path / "cli"), THUMBS_DATABASE_URL=url,
                                  THUMBS_SECRET="test-secret", THUMBS_ALLOWED_SOURCES=settings.allowed_sources[0]),
            capture_output=True, text=True, timeout=60,
        )
        assert command.returncode == 1, command.stderr
        error = [line for line in command.stderr.splitlines() if line.startswith("thumbs: error: ")]
        assert "Traceback" not in command.stderr
        assert len(error) == 1 and "read-only transaction" in error[0], command.stderr
