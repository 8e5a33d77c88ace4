"""PostgreSQL restarted (immediate shutdown, like a crash) in the middle of a backfill: the job
resumes and finishes, and no image is ever marked ready without its thumbnail on disk.

Uses a private PostgreSQL cluster (initdb + pg_ctl, as the postgres user when run as root) on a
free port. The binaries are found under /usr/lib/postgresql/*/bin (newest first) or on PATH; when
they are missing the test skips, and in CI (CI=true) it fails instead.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import asyncpg
import httpx
import pytest

from library_api.app import create_api, mount_api
from library_api.migrate import run_migrations
from proxy.app import create_proxy
from proxy.storage import DiskStore
from proxy.urls import cache_key
from proxy.variants import THUMB
from proxy.warm_types import WarmOutcome
from tests.reliability.conftest import _in_thread
from tests.support import images
from tests.support.origin import Origin
from tests.support.pg import Cluster
from tests.support.wait import wait_until
from thumbs.configs import proxy_config
from thumbs.settings import Settings

ADMIN = {"authorization": "Bearer admin-token"}




async def _statuses(url: str) -> dict[str, str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT url, thumbnail_status FROM pipeline_step_outputs")
        return {row["url"]: row["thumbnail_status"] for row in rows}
    finally:
        await connection.close()


@pytest.mark.timeout(120)
async def test_backfill_resumes_after_a_postgres_restart_and_marks_nothing_early(
    make_settings: Callable[..., Settings], origin: Origin, unique, cluster: Cluster
) -> None:
    settings = make_settings(database_url=cluster.url, negative_ttl=0)
    _in_thread(lambda: run_migrations(settings))
    # Past the first batch (the backfill goes newest first: the last ten inserted) the origin holds its
    # answers until the database is down: the crash lands mid-run by construction, not because the
    # fetches happened to be slow enough.
    later = threading.Event()
    sources = [origin.add(unique(f"b{index}.jpg"), images.jpeg(images.photo(120, 90)),
                          hold=later if index < 50 else None)
               for index in range(60)]
    store = DiskStore(settings.store_dir)
    proxy = create_proxy(proxy_config(settings), warm_consumer=False)
    # The ingest path must not warm these: they are the legacy images the backfill is for.
    seed = create_api(settings, _RefusingWarmClient())
    async with seed.component.lifespan():
        from library_api.images import insert_image

        for source in sources:
            await insert_image(seed.database, url=source, pipeline_id="legacy", step="s", width=None, height=None)
    api = create_api(settings, proxy.warmer, job_lease_seconds=2.0)
    api.backfill.retry_delays = (0.2, 0.5, 1.0)
    app = mount_api(api)
    violations: list[str] = []
    try:
        async with proxy.component.lifespan(), api.component.lifespan():
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://thumbs.test") as client:
                started = await client.post("/api/library/generate-thumbnails", json={"batch_size": 10}, headers=ADMIN)
                assert started.status_code == 202, started.text
                job_url = started.json()["url"]

                async def check() -> dict[str, str]:
                    statuses = await _statuses(cluster.url)
                    for url, status in statuses.items():
                        if status == "ready" and not store.path(cache_key(url, THUMB)).is_file():
                            violations.append(url)
                    return statuses

                deadline = time.monotonic() + 30
                while sum(status == "ready" for status in (await check()).values()) < 10:
                    assert time.monotonic() < deadline, "the backfill did not start"
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(cluster.stop, "immediate")  # a crash, mid-batch
                during = await client.get(job_url, headers=ADMIN)
                assert during.status_code == 503 and during.json()["error"] == "database_unavailable"
                later.set()  # the held batch's warm-ups finish into the outage
                # Start it again once the backfill itself has failed on the outage (its run stopped).
                await wait_until(lambda: not api.backfill.running(), 30, what="the backfill run to meet the outage")
                await asyncio.to_thread(cluster.start)
                deadline = time.monotonic() + 60
                while True:
                    response = await client.get(job_url, headers=ADMIN)
                    if response.status_code == 200 and response.json()["status"] == "done":
                        break
                    assert time.monotonic() < deadline, f"the backfill did not resume: {response.text}"
                    await check()
                    await asyncio.sleep(0.2)
                final = response.json()
    finally:
        later.set()  # never leave the origin holding answers
    statuses = await check()
    assert violations == []  # never ready without the thumbnail on disk
    assert set(statuses.values()) == {"ready"} and len(statuses) == len(sources)
    assert final["done"] + final["failed"] >= len(sources) and final["failed"] == 0
    for source in sources:
        assert origin.hits[source.removeprefix(origin.base_url)] == 1, source  # a redone batch hits the disk store


class _RefusingWarmClient:
    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        raise RuntimeError("not warming during the seed")
