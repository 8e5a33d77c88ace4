"""A lease renewal that fails once (a database blip) neither ends the heartbeat nor the finished job.

Before, the heartbeat task died at its first failed renewal: the rest of the run went without
one (a batch longer than the lease could be taken over by another process), and when the job
then finished, `run` re-raised that old error from its cleanup instead of returning the done
job: `thumbs backfill` exited 1 for a job that was done, and the lease was not released.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from library_api.backfill import Backfill
from proxy.warm_types import WarmOutcome
from tests.api.conftest import Harness
from tests.api.seed import seed
from tests.api.warm import RecordingWarmClient

LEASE = 0.3  # the heartbeat renews every 0.1 s


class SlowWarmClient(RecordingWarmClient):
    """Each batch takes longer than the lease, so only the heartbeat keeps the job held."""

    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        await asyncio.sleep(LEASE * 1.5)
        return await super().warm(sources, wait=wait, tags=tags)


async def test_a_failed_lease_renewal_keeps_the_heartbeat_and_the_job_finishes(
    harness: Harness, origin_url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(harness.api.database, origin_url(""), 6)
    backfill = Backfill(harness.api.database, harness.settings, SlowWarmClient(), lease_seconds=LEASE)
    renewals: list[bool] = []
    renew = backfill.store.renew_lease

    async def blip_once(job_id: int) -> None:
        renewals.append(True)
        if len(renewals) == 1:
            raise OSError("connection reset by peer")  # what a database restart looks like here
        await renew(job_id)

    monkeypatch.setattr(backfill.store, "renew_lease", blip_once)
    claim = await backfill.claim(batch_size=2)
    progress = await asyncio.wait_for(backfill.run(int(claim.job["id"])), 20)
    assert (progress.status, progress.done, progress.failed) == ("done", 6, 0)
    # Three batches of 0.45 s each, a renewal every 0.1 s: the heartbeat went on after the blip.
    assert len(renewals) >= 5, renewals
