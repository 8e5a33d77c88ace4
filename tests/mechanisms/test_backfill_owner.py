"""'Jobs never run twice at once': exactly one owner when claimers race, and a stale owner's commit refused.

The claimers here start at the same moment for real: in-process, each claimer's first read of
the job table waits until every claimer has read it, so all of them decide on the same state
(the race the SQL guards exist for); across processes, two ``run_backfill`` processes on
PostgreSQL make their first claim at one agreed wall-clock instant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from databases import Database
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from library_api.backfill import Backfill, Claim, LeaseLost
from library_api.db import utcnow
from tests.api.conftest import Harness
from tests.api.seed import seed
from tests.api.warm import RecordingWarmClient
from tests.support.servers import serve_in_thread
from thumbs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class Lockstep:
    """A Database whose first ``fetch_one`` returns only once every claimer sharing the barrier has made its own."""

    def __init__(self, database: Database, barrier: asyncio.Barrier) -> None:
        self._database = database
        self._barrier = barrier
        self._waited = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)

    async def fetch_one(self, query: Any, values: dict[str, Any] | None = None) -> Any:
        row = await self._database.fetch_one(query, values)
        if not self._waited:
            self._waited = True
            await asyncio.wait_for(self._barrier.wait(), 10)
        return row


def racing_claimers(harness: Harness, count: int) -> list[Backfill]:
    barrier = asyncio.Barrier(count)
    return [
        Backfill(Lockstep(harness.api.database, barrier), harness.settings, RecordingWarmClient())  # type: ignore[arg-type]
        for _ in range(count)
    ]


async def owner_of(harness: Harness, job_id: int) -> str | None:
    return await harness.api.database.fetch_val(
        "SELECT lease_owner FROM thumbnail_jobs WHERE id = :id", {"id": job_id}
    )


async def test_two_claimers_starting_together_create_one_job_with_one_owner(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 5)
    claimers = racing_claimers(harness, 2)
    claims: list[Claim] = list(await asyncio.gather(*(c.claim(batch_size=2) for c in claimers)))
    assert sorted(claim.owned for claim in claims) == [False, True]
    assert claims[0].job["id"] == claims[1].job["id"]
    winner = next(c for c, claim in zip(claimers, claims, strict=True) if claim.owned)
    assert await owner_of(harness, int(claims[0].job["id"])) == winner.owner
    assert await harness.api.database.fetch_val("SELECT count(*) FROM thumbnail_jobs") == 1


async def test_two_claimers_of_an_orphaned_job_at_the_same_moment_one_takes_it_over(
    harness: Harness, origin_url: Any
) -> None:
    await seed(harness.api.database, origin_url(""), 5)
    crashed = Backfill(harness.api.database, harness.settings, RecordingWarmClient())
    orphan = await crashed.claim(batch_size=2)
    assert orphan.owned
    # Its process died: the lease ran out a moment ago.
    await harness.api.database.execute(
        "UPDATE thumbnail_jobs SET lease_expires_at = :t", {"t": utcnow() - dt.timedelta(seconds=1)}
    )
    claimers = racing_claimers(harness, 2)
    claims = list(await asyncio.gather(*(c.claim(batch_size=2) for c in claimers)))
    owned = [c for c, claim in zip(claimers, claims, strict=True) if claim.owned]
    assert len(owned) == 1, "both claimers took the job over: it would run twice at once"
    assert {int(claim.job["id"]) for claim in claims} == {int(orphan.job["id"])}
    assert await owner_of(harness, int(orphan.job["id"])) == owned[0].owner


async def test_a_commit_after_a_lost_lease_raises_lease_lost_and_the_job_still_finishes(
    harness: Harness, origin_url: Any
) -> None:
    total = 12
    await seed(harness.api.database, origin_url(""), total)
    database = harness.api.database
    stalled_warm = RecordingWarmClient(hold=asyncio.Event(), hold_from=2)  # stalls inside its 2nd batch
    stalled = Backfill(database, harness.settings, stalled_warm)
    claim = await stalled.claim(batch_size=4)
    job_id = int(claim.job["id"])
    stalled_run = asyncio.create_task(stalled.run(job_id))
    await asyncio.wait_for(stalled_warm.entered.wait(), 10)
    # It stalls past its lease (a long pause, a partition): the lease lapses and a survivor takes over.
    await database.execute("UPDATE thumbnail_jobs SET lease_expires_at = :t", {"t": utcnow()})
    survivor_warm = RecordingWarmClient(hold=asyncio.Event(), hold_from=1)
    survivor = Backfill(database, harness.settings, survivor_warm)
    taken = await survivor.claim(batch_size=4)
    assert taken.owned and int(taken.job["id"]) == job_id
    survivor_run = asyncio.create_task(survivor.run(job_id))
    await asyncio.wait_for(survivor_warm.entered.wait(), 10)
    assert survivor_warm.calls[0][0] == stalled_warm.calls[1][0]  # both now hold the same batch
    # The stale owner wakes up first and tries to commit that batch.
    stalled_warm.hold.set()  # type: ignore[union-attr]
    with pytest.raises(LeaseLost, match="taken over; this batch is left to the new owner"):
        await asyncio.wait_for(stalled_run, 10)
    survivor_warm.hold.set()  # type: ignore[union-attr]
    progress = await asyncio.wait_for(survivor_run, 20)
    assert progress.status == "done" and (progress.total, progress.done, progress.failed) == (total, total, 0)
    statuses = await database.fetch_all("SELECT thumbnail_status FROM pipeline_step_outputs")
    assert [row["thumbnail_status"] for row in statuses] == ["ready"] * total


CHILD = """
import asyncio, logging, sys, time
from library_api import backfill
from library_api.warm_client import HttpWarmClient
from thumbs.settings import Settings

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
start_at: list[float] = []
first_claim = backfill.Backfill.claim


async def claim_at_the_agreed_moment(self, *args, **kwargs):
    # Connected and ready: both processes make their first claim at the same wall-clock instant.
    if start_at:
        moment = start_at.pop()
        await asyncio.sleep(max(0.0, moment - time.time() - 0.002))
        while time.time() < moment:
            pass
    return await first_claim(self, *args, **kwargs)


backfill.Backfill.claim = claim_at_the_agreed_moment


async def main() -> None:
    settings = Settings(_env_file=None)  # the test's settings, as THUMBS_* variables
    client = HttpWarmClient(sys.argv[1], "t")
    print("ready", flush=True)
    start_at.append(float(await asyncio.to_thread(sys.stdin.readline)))
    try:
        progress = await backfill.run_backfill(settings, client, batch_size=3, poll_seconds=0.05)
    finally:
        await client.aclose()
    print("result", progress.id, progress.status, progress.done, progress.failed, flush=True)


asyncio.run(main())
"""


class WarmEndpoint:
    """The /warm contract; records each source warmed and how many calls ever overlapped."""

    def __init__(self) -> None:
        self.completed: Counter[str] = Counter()
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()

    async def warm(self, request: Request) -> JSONResponse:
        sources = (await request.json())["sources"]
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        await asyncio.sleep(0.05)  # long enough that a second owner's batch would overlap
        with self.lock:
            self.active -= 1
            self.completed.update(sources)
        results = [
            {"source": s, "ok": True, "error": None, "detail": None, "width": 8, "height": 8, "color": "#000000"}
            for s in sources
        ]
        return JSONResponse({"results": results})


async def _child(settings: Settings, warm_url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, warm_url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=ROOT, env={**os.environ, **settings.as_environment(), "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("orphaned", [False, True], ids=["new-job", "orphaned-job"])
async def test_two_backfill_processes_started_together_on_postgresql_have_one_owner(
    harness: Harness, origin_url: Any, orphaned: bool
) -> None:
    total = 15
    await seed(harness.api.database, origin_url(""), total)
    if orphaned:  # a job whose process died; both new processes race to take it over
        crashed = Backfill(harness.api.database, harness.settings, RecordingWarmClient())
        assert (await crashed.claim(batch_size=3)).owned
        await harness.api.database.execute(
            "UPDATE thumbnail_jobs SET lease_expires_at = :t", {"t": utcnow() - dt.timedelta(seconds=1)}
        )
    endpoint = WarmEndpoint()
    app = Starlette(routes=[Route("/warm", endpoint.warm, methods=["POST"])])
    with serve_in_thread(app) as base:
        children = [await _child(harness.settings, base + "/warm") for _ in range(2)]
        try:
            for child in children:
                assert child.stdout is not None
                line = await asyncio.wait_for(child.stdout.readline(), 60)
                assert line.strip() == b"ready", line
            moment = time.time() + 0.5  # both connect to the database first, then claim at this instant
            for child in children:
                assert child.stdin is not None
                child.stdin.write(f"{moment}\n".encode())
            await asyncio.gather(*(child.stdin.drain() for child in children if child.stdin is not None))
            outputs = await asyncio.wait_for(asyncio.gather(*(child.communicate() for child in children)), 90)
        finally:
            for child in children:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
    logs = [err.decode() for _, err in outputs]
    assert [child.returncode for child in children] == [0, 0], logs
    results = [next(line for line in out.decode().splitlines() if line.startswith("result")) for out, _ in outputs]
    job_id = await harness.api.database.fetch_val("SELECT id FROM thumbnail_jobs ORDER BY id DESC LIMIT 1")
    assert results == [f"result {job_id} done {total} 0"] * 2
    assert await harness.api.database.fetch_val("SELECT count(*) FROM thumbnail_jobs") == 1
    # One owner: one process finished the job, batches never overlapped, each image warmed once.
    assert sum(log.count(f"backfill job {job_id} done") for log in logs) == 1, logs
    assert endpoint.most_active == 1
    assert len(endpoint.completed) == total and set(endpoint.completed.values()) == {1}
