"""A backfill process killed with SIGKILL mid-batch: its lease lapses, the next run continues."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from library_api.backfill import run_backfill
from library_api.warm_client import HttpWarmClient
from tests.api.conftest import Harness
from tests.api.seed import seed
from tests.support.servers import serve_in_thread

CHILD = """
import asyncio, sys
from library_api.backfill import run_backfill
from library_api.warm_client import HttpWarmClient
from thumbs.settings import Settings
settings = Settings(
    _env_file=None, database_url=sys.argv[1], secret="test-secret", allowed_sources=sys.argv[3].split(",")
)
asyncio.run(run_backfill(settings, HttpWarmClient(sys.argv[2], "t"), batch_size=5, lease_seconds=1.0))
"""


class WarmEndpoint:
    """The /warm contract, recording calls; the ``hang_call``-th call never answers while hanging."""

    def __init__(self, hang_call: int) -> None:
        self.calls: list[list[str]] = []
        self.completed: Counter[str] = Counter()
        self.hang_call = hang_call
        self.hanging = threading.Event()
        self.release = threading.Event()

    async def warm(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.calls.append(body["sources"])
        if len(self.calls) == self.hang_call:
            self.hanging.set()
            await asyncio.to_thread(self.release.wait, 120)
            return JSONResponse({"error": "gone", "detail": "the caller was killed"}, status_code=503)
        self.completed.update(body["sources"])
        results = [
            {"source": s, "ok": True, "error": None, "detail": None, "width": 8, "height": 8, "color": "#000000"}
            for s in body["sources"]
        ]
        return JSONResponse({"results": results})


async def test_backfill_resumes_after_sigkill_mid_batch(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 17)
    endpoint = WarmEndpoint(hang_call=2)
    app = Starlette(routes=[Route("/warm", endpoint.warm, methods=["POST"])])
    with serve_in_thread(app) as base:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            harness.settings.database_url,
            base + "/warm",
            ",".join(harness.settings.allowed_sources),  # the backfill refuses other sources itself
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            assert await asyncio.to_thread(endpoint.hanging.wait, 60), "the child never reached batch 2"
            os.kill(child.pid, signal.SIGKILL)  # no cleanup, no lease release
            await child.wait()
        finally:
            endpoint.release.set()
        job = await harness.api.database.fetch_one("SELECT id, done, lease_owner FROM thumbnail_jobs")
        assert job is not None, "the killed child left no job row"
        assert job["done"] == 5 and job["lease_owner"] is not None  # batch 1 committed; lease left behind

        client = HttpWarmClient(base + "/warm", "t")
        try:
            progress = await run_backfill(harness.settings, client, batch_size=5, lease_seconds=1.0, poll_seconds=0.1)
        finally:
            await client.aclose()
    assert progress.id == job["id"] and progress.status == "done"
    assert (progress.done, progress.failed) == (17, 0)
    statuses = await harness.api.database.fetch_all("SELECT thumbnail_status FROM pipeline_step_outputs")
    assert {row["thumbnail_status"] for row in statuses} == {"ready"}
    # Nothing done twice, nothing lost: each image completed once; only the killed batch was re-asked.
    assert len(endpoint.completed) == 17 and set(endpoint.completed.values()) == {1}
    assert [len(call) for call in endpoint.calls] == [5, 5, 5, 5, 2]
    assert endpoint.calls[1] == endpoint.calls[2]
