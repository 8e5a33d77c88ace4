"""API fixtures: every test runs against SQLite (a tmp file) and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from library_api.app import LibraryAPI, create_api, mount_api
from library_api.migrate import run_migrations
from tests.api.warm import RecordingWarmClient
from thumbs.settings import Settings

TABLES = "pipeline_step_outputs, thumbnail_jobs, thumbnail_job_failures"


def in_thread(function: Callable[[], Any]) -> None:
    """Run sync code that may start its own event loop (Alembic's async env) off this loop."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            function()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def migrated_pg(pg_url: str) -> str:
    in_thread(lambda: run_migrations(Settings(_env_file=None, database_url=pg_url)))
    return pg_url


async def truncate(pg_url: str) -> None:
    connection = await asyncpg.connect(pg_url)
    try:
        # The TRUNCATE trigger resets the image counter too.
        await connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'library.db'}"
    pg_url = request.getfixturevalue("migrated_pg")
    in_thread(lambda: asyncio.run(truncate(pg_url)))
    return pg_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture
def warm() -> RecordingWarmClient:
    return RecordingWarmClient()


@dataclass
class Harness:
    api: LibraryAPI
    client: httpx.AsyncClient
    warm: RecordingWarmClient
    settings: Settings

    async def add(self, url: str, **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/library/images", json={"url": url, "pipeline_id": "p1", "step": "s1", **extra}
        )
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
async def harness(settings: Settings, warm: RecordingWarmClient) -> AsyncIterator[Harness]:
    api = create_api(settings, warm)
    app = mount_api(api)
    async with api.component.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(api, client, warm, settings)


@pytest.fixture
def origin_url(origin: Any) -> Iterator[Callable[[str], str]]:
    """URLs on the allowed test origin (nothing needs to be served for the listing)."""
    yield lambda path: origin.base_url + path
