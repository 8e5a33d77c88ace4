"""The thumbnail backfill: admin endpoints, progress, one job at a time, resuming after a kill."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from library_api.backfill import Backfill, LeaseLost, run_backfill
from library_api.db import utcnow
from tests.api.conftest import Harness
from tests.api.seed import seed
from tests.api.warm import RecordingWarmClient
from tests.support.wait import wait_until

ADMIN = {"authorization": "Bearer admin-token"}
JOBS = "/api/library/generate-thumbnails"


async def statuses(harness: Harness) -> dict[str, str]:
    rows = await harness.api.database.fetch_all("SELECT url, thumbnail_status FROM pipeline_step_outputs")
    return {row["url"]: row["thumbnail_status"] for row in rows}


async def progress_of(harness: Harness, job_id: int | None = None) -> dict[str, Any]:
    path = JOBS if job_id is None else f"{JOBS}/{job_id}"
    return (await harness.client.get(path, headers=ADMIN)).json()


async def wait_done(harness: Harness, job_id: int) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        progress = await progress_of(harness, job_id)
        return progress if progress["status"] == "done" else None

    return await wait_until(finished, 20, what=f"job {job_id} to finish")


async def test_admin_token_is_required(harness: Harness) -> None:
    for method, path in (("POST", JOBS), ("GET", JOBS), ("GET", f"{JOBS}/1")):
        missing = await harness.client.request(method, path)
        assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await harness.client.request(method, path, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
        basic = await harness.client.request(method, path, headers={"authorization": "Basic YWRtaW46YWRtaW4="})
        assert basic.status_code == 401
    assert harness.warm.calls == []


async def test_admin_endpoints_are_closed_without_a_configured_token(harness: Harness) -> None:
    harness.settings.admin_token = ""
    response = await harness.client.post(JOBS, headers={"authorization": "Bearer "})
    assert response.status_code in (401, 403)
    response = await harness.client.post(JOBS, headers={"authorization": "Bearer x"})
    assert response.status_code == 403


async def test_unknown_job_and_bad_job_ids_are_404(harness: Harness) -> None:
    assert (await harness.client.get(JOBS, headers=ADMIN)).status_code == 404
    for job_id in ("999", "abc", "-1", "1e3", "9" * 40, "²", "١", "１", "0", "+1", " 1"):  # noqa: RUF001
        response = await harness.client.get(f"{JOBS}/{job_id}", headers=ADMIN)
        assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_bad_start_bodies_are_400(harness: Harness) -> None:
    for payload in ({"batch_size": 0}, {"batch_size": 501}, {"batch_size": "10"}, [1], {"retry_failed": "yes"}):
        response = await harness.client.post(JOBS, headers=ADMIN, json=payload)
        assert response.status_code == 400, response.text
    assert (await harness.client.get(JOBS, headers=ADMIN)).status_code == 404  # nothing started


async def test_backfill_endpoint_warms_legacy_images_and_records_failures(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 23)
    bad = [origin_url("/seed/3.jpg"), origin_url("/seed/17.jpg")]
    for url in bad:
        harness.warm.failures[url] = ("origin_status", "origin answered 404")
    harness.warm.hold = asyncio.Event()
    started = await harness.client.post(JOBS, headers=ADMIN, json={"batch_size": 5})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["status"] == "running" and job["total"] == 23 and job["remaining"] == 23
    assert started.headers["location"] == f"{JOBS}/{job['id']}"
    # Only one job at a time: a second POST returns the running one.
    again = await harness.client.post(JOBS, headers=ADMIN)
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    harness.warm.hold.set()

    progress = await wait_done(harness, job["id"])
    assert (progress["done"], progress["failed"], progress["remaining"]) == (21, 2, 0)
    assert progress["finished_at"] is not None
    assert sorted(failure["url"] for failure in progress["recent_failures"]) == sorted(bad)
    assert {failure["error"] for failure in progress["recent_failures"]} == {"origin_status"}
    states = await statuses(harness)
    assert [url for url, state in states.items() if state == "failed"] == sorted(bad, key=list(states).index)
    assert sum(state == "ready" for state in states.values()) == 21
    # Every image asked for exactly once, newest first, in batches of 5.
    assert sorted(harness.warm.warmed()) == sorted(states)
    assert [len(sources) for sources, _ in harness.warm.calls] == [5, 5, 5, 5, 3]
    assert harness.warm.calls[0][0][0] == origin_url("/seed/22.jpg")
    assert all(wait for _, wait in harness.warm.calls)
    # Finished: a new POST starts a new job with nothing left to do; retry_failed takes the failures again.
    second = await harness.client.post(JOBS, headers=ADMIN)
    assert second.status_code == 202 and second.json()["id"] != job["id"] and second.json()["total"] == 0
    assert second.json()["retry_failed"] is False
    await wait_done(harness, second.json()["id"])
    retry = await harness.client.post(JOBS, headers=ADMIN, json={"retry_failed": True})
    assert retry.status_code == 202 and retry.json()["total"] == 2 and retry.json()["retry_failed"] is True
    harness.warm.failures.clear()
    assert (await wait_done(harness, retry.json()["id"]))["done"] == 2
    assert set((await statuses(harness)).values()) == {"ready"}


async def test_backfill_resumes_after_being_killed_mid_batch(harness: Harness, settings: Any, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 25)
    warm = RecordingWarmClient(hold=asyncio.Event(), hold_from=2)  # the 2nd batch hangs mid-warm
    first = asyncio.create_task(run_backfill(settings, warm, batch_size=10))
    await asyncio.wait_for(warm.entered.wait(), 10)
    first.cancel()  # killed in the middle of batch 2
    with contextlib.suppress(asyncio.CancelledError):
        await first
    states = await statuses(harness)
    assert sum(state == "ready" for state in states.values()) == 10  # batch 1 committed, batch 2 not

    warm.hold = None
    seen: list[Any] = []
    progress = await run_backfill(settings, warm, batch_size=10, on_progress=seen.append)
    assert progress.status == "done" and (progress.done, progress.failed, progress.remaining) == (25, 0, 0)
    assert progress.id == seen[0].id  # the same job, continued
    jobs = await harness.api.database.fetch_val("SELECT count(*) FROM thumbnail_jobs")
    assert jobs == 1
    assert set((await statuses(harness)).values()) == {"ready"}
    # Nothing done twice: every thumbnail completed once; only the killed batch was asked again.
    assert set(warm.completed.values()) == {1} and len(warm.completed) == 25
    assert [len(sources) for sources, _ in warm.calls] == [10, 10, 10, 5]
    assert warm.calls[1][0] == warm.calls[2][0]


async def test_a_crashed_owner_is_taken_over_after_its_lease(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 6)
    database = harness.api.database
    crashed = Backfill(database, harness.settings, RecordingWarmClient(), lease_seconds=30)
    claim = await crashed.claim(batch_size=4)
    assert claim.created and claim.owned
    survivor_warm = RecordingWarmClient()
    survivor = Backfill(database, harness.settings, survivor_warm, lease_seconds=30)
    waiting = await survivor.claim(batch_size=4)
    assert not waiting.owned and waiting.job["id"] == claim.job["id"]  # the lease is still live
    # The owner died without releasing: its lease runs out.
    await database.execute("UPDATE thumbnail_jobs SET lease_expires_at = :t", {"t": utcnow()})
    taken = await survivor.claim(batch_size=4)
    assert taken.owned and not taken.created and taken.job["id"] == claim.job["id"]
    progress = await survivor.run(int(taken.job["id"]))
    assert (progress.done, progress.status) == (6, "done")
    # The old owner, if it wakes up, cannot commit anything.
    with pytest.raises(LeaseLost):
        await crashed.run(int(claim.job["id"]))
    assert len(survivor_warm.completed) == 6


async def test_warm_outage_pauses_the_job_without_marking_failures(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 4)
    warm = RecordingWarmClient(broken=True)
    backfill = Backfill(harness.api.database, harness.settings, warm, retry_delays=(0.0, 0.0))
    claim = await backfill.claim(batch_size=10)
    with pytest.raises(Exception, match="warm path failed"):
        await backfill.run(int(claim.job["id"]))
    assert len(warm.calls) == 6  # first try + two retries, each the batch and a probe that fails too
    job = await backfill.job(int(claim.job["id"]))
    assert job is not None
    assert job["status"] == "running" and "ConnectionError" in job["last_error"]
    assert job["lease_owner"] is None  # released: anyone may resume it
    assert set((await statuses(harness)).values()) == {"pending"}
    warm.broken = False
    resumed = await backfill.claim(batch_size=10)
    assert resumed.owned and resumed.job["id"] == claim.job["id"]
    progress = await backfill.run(int(claim.job["id"]))
    assert (progress.done, progress.failed, progress.last_error) == (4, 0, None)


async def _with_done(harness: Harness, done: int) -> dict[str, Any] | None:
    progress = await progress_of(harness)
    return progress if progress["done"] == done and progress["rate"] else None


async def test_progress_reports_rate_and_eta_while_running(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 12)
    harness.warm.hold = asyncio.Event()
    harness.warm.hold_from = 2
    job = (await harness.client.post(JOBS, headers=ADMIN, json={"batch_size": 4})).json()
    await asyncio.wait_for(harness.warm.entered.wait(), 10)
    progress = await wait_until(
        lambda: _with_done(harness, 4), what="the first batch's progress (rate needs processed images)"
    )
    assert progress["id"] == job["id"]
    assert (progress["done"], progress["remaining"]) == (4, 8)
    assert progress["rate"] > 0 and progress["eta_seconds"] == pytest.approx(8 / progress["rate"], abs=0.1)
    harness.warm.hold.set()
    assert (await wait_done(harness, job["id"]))["done"] == 12


async def test_run_backfill_reports_a_paused_job_when_the_warm_path_stays_down(
    harness: Harness, settings: Any, origin_url: Any
) -> None:
    await seed(harness.api.database, origin_url(""), 3)
    progress = await run_backfill(settings, RecordingWarmClient(broken=True), batch_size=2, retry_delays=(0.0,))
    assert progress.status == "running" and progress.done == 0 and progress.failed == 0
    assert progress.last_error is not None and "unreachable" in progress.last_error
