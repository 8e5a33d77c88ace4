"""With Redis, ingest warms through the durable stream: a killed API process loses nothing.

The API runs as compose runs it (`thumbs serve --no-warm-consumer`), answers 201 for a
batch of ingests and is SIGKILLed at once. Workers started only afterwards generate every
one of those thumbnails exactly once (origin request counts) and write each outcome,
success or failure, to its row.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.support.demo_server import clean_environment
from tests.support.origin import Origin
from tests.support.pg import create_database, drop_database
from tests.support.processes import answers, start, stopping, wait_until
from tests.support.servers import free_port
from thumbs.demo.images import demo_image

IMAGES = 8


@pytest.fixture
def database_url(run_id: str) -> Iterator[str]:
    name = f"thumbs_durable_{run_id}_{uuid.uuid4().hex[:6]}"
    create_database(PG_ADMIN_URL, name)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        drop_database(PG_ADMIN_URL, name)


def product_environment(tmp_path: Path, origin: Origin, database_url: str, prefix: str, port: int,
                        **extra: str) -> dict[str, str]:
    """The product with PostgreSQL, Redis under a key prefix of its own, and the test origin."""
    return clean_environment(
        THUMBS_DATA_DIR=str(tmp_path / "data"), THUMBS_DATABASE_URL=database_url, THUMBS_REDIS_URL=REDIS_URL,
        THUMBS_REDIS_PREFIX=f"{prefix}{uuid.uuid4().hex[:6]}:", THUMBS_SECRET="durable", THUMBS_ADMIN_TOKEN="a",
        THUMBS_WARM_TOKEN="w", THUMBS_INGEST_TOKEN="i", THUMBS_ALLOWED_SOURCES=origin.base_url.removeprefix("http://"),
        THUMBS_ALLOW_PRIVATE_SOURCES="true", THUMBS_HOST="127.0.0.1", THUMBS_PORT=str(port),
        THUMBS_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", PYTHONUNBUFFERED="1", **extra,
    )


def rows(database_url: str) -> list[asyncpg.Record]:
    async def query() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(database_url)
        try:
            return await connection.fetch(
                "SELECT id, url, thumbnail_status, thumbnail_error, width, color FROM pipeline_step_outputs")
        finally:
            await connection.close()

    return asyncio.run(query())


def test_ingests_answered_201_survive_the_api_being_killed(
    tmp_path: Path, origin: Origin, database_url: str, redis_prefix: str
) -> None:
    port = free_port()
    environment = product_environment(tmp_path, origin, database_url, f"{redis_prefix}durable-", port,
                                      THUMBS_NEGATIVE_TTL="1")
    run_tag = uuid.uuid4().hex[:8]
    paths = [f"/durable/{run_tag}/{n}.png" for n in range(IMAGES)]
    sources = [origin.add(path, demo_image(n, "small").data, content_type="image/png") for n, path in enumerate(paths)]
    broken_path = f"/durable/{run_tag}/broken.png"
    broken = origin.add(broken_path, b"this is not an image", content_type="image/png")
    thumbs = [sys.executable, "-m", "thumbs.cli"]
    logs = tmp_path / "logs"

    migrate = start("migrate", [*thumbs, "migrate"], environment, logs)
    assert migrate.process.wait(60) == 0, migrate.tail()
    with stopping() as started:
        api = start("api", [*thumbs, "serve", "--no-warm-consumer"], environment, logs)
        started.append(api)
        base = f"http://127.0.0.1:{port}"
        wait_until(answers(f"{base}/healthz"), 60, "the API", [api])
        with httpx.Client(base_url=base, headers={"authorization": "Bearer i"}) as client:
            for source in [*sources, broken]:
                response = client.post("/api/library/images", json={"url": source, "pipeline_id": "p", "step": "s"})
                assert response.status_code == 201, response.text
        api.kill()  # right after the last 201: nothing in this process gets to finish
        assert all(origin.hits[path] == 0 for path in paths), "something generated before any worker ran"
        assert {row["thumbnail_status"] for row in rows(database_url)} == {"pending"}

        for n in range(2):
            started.append(start(f"worker-{n}", [*thumbs, "worker"], environment, logs))

        def settled() -> bool:
            return all(row["thumbnail_status"] != "pending" for row in rows(database_url))

        wait_until(settled, 90, "every row to leave pending", started[1:])

    by_url = {row["url"]: row for row in rows(database_url)}
    for source, path in zip(sources, paths, strict=True):
        row = by_url[source]
        assert row["thumbnail_status"] == "ready", dict(row)
        assert row["width"] and row["color"], dict(row)
        assert origin.hits[path] == 1, f"{path} fetched {origin.hits[path]} times"
    assert by_url[broken]["thumbnail_status"] == "failed"
    assert by_url[broken]["thumbnail_error"], dict(by_url[broken])
    assert origin.hits[broken_path] == 1
    stored = [path for path in (tmp_path / "data" / "thumbs").rglob("*") if path.is_file()]
    assert len(stored) == IMAGES * 3  # the thumbnail and the two cell variants, from the one fetch


def test_backfill_with_redis_is_made_by_the_worker_through_the_stream(
    tmp_path: Path, origin: Origin, database_url: str, redis_prefix: str
) -> None:
    """The API (no consumer of its own) starts the job; only the worker generates; the rows and
    the job's progress show the truth, the broken source failed with its reason."""
    port = free_port()
    environment = product_environment(tmp_path, origin, database_url, f"{redis_prefix}backfill-", port)
    run_tag = uuid.uuid4().hex[:8]
    paths = [f"/backfill/{run_tag}/{n}.png" for n in range(5)]
    sources = [origin.add(path, demo_image(n + 20, "small").data, content_type="image/png")
               for n, path in enumerate(paths)]
    broken = origin.add(f"/backfill/{run_tag}/broken.png", b"not an image", content_type="image/png")
    thumbs = [sys.executable, "-m", "thumbs.cli"]
    logs = tmp_path / "logs"
    migrate = start("migrate", [*thumbs, "migrate"], environment, logs)
    assert migrate.process.wait(60) == 0, migrate.tail()

    async def seed() -> None:  # legacy rows, as an old writer left them: no thumbnail yet
        connection = await asyncpg.connect(database_url)
        try:
            await connection.executemany(
                "INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) VALUES ($1, now(), 'p', 's')",
                [(source,) for source in [*sources, broken]])
        finally:
            await connection.close()

    asyncio.run(seed())
    with stopping() as started:
        api = start("api", [*thumbs, "serve", "--no-warm-consumer"], environment, logs)
        worker = start("worker", [*thumbs, "worker"], environment, logs)
        started += [api, worker]
        base = f"http://127.0.0.1:{port}"
        wait_until(answers(f"{base}/healthz"), 60, "the API", started)
        admin = {"authorization": "Bearer a"}
        job = httpx.post(f"{base}/api/library/generate-thumbnails", headers=admin, json={"batch_size": 3})
        assert job.status_code == 202, job.text
        url = base + job.json()["url"]

        def finished() -> bool:
            return httpx.get(url, headers=admin).json()["status"] != "running"

        wait_until(finished, 120, "the backfill job to finish", started)
        progress = httpx.get(url, headers=admin).json()
        worker_log = worker.tail(100_000)
    assert progress["status"] == "done", progress
    assert (progress["done"], progress["failed"]) == (5, 1), progress
    # Five thumbnails and their two cell variants each, all by the worker.
    assert worker_log.count("generated thumbnail") == 5 * 3, worker_log[-2000:]
    assert all(origin.hits[path] == 1 for path in paths), {path: origin.hits[path] for path in paths}
    statuses = {row["url"]: row["thumbnail_status"] for row in rows(database_url)}
    assert [statuses[source] for source in sources] == ["ready"] * 5 and statuses[broken] == "failed"
