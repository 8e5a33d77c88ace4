"""Rows the backfill cannot process never stall it: each is marked failed with its reason, and can be retried."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from library_api.backfill import PROBE_SOURCE, run_backfill
from library_api.db import create_database
from library_api.migrate import run_migrations
from proxy.warm_types import WarmOutcome
from tests.api.conftest import in_thread
from tests.api.legacy import create_legacy_table, fresh_database
from tests.api.warm import RecordingWarmClient

WHEN = dt.datetime(2024, 5, 1, 12)


class PoisonWarmClient(RecordingWarmClient):
    """Raises for a whole call whenever one of the ``poison`` sources is in it (a proxy that chokes on one)."""

    def __init__(self, poison: set[str]) -> None:
        super().__init__()
        self.poison = poison

    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        if self.poison & set(sources):
            self.calls.append((list(sources), wait))
            raise ValueError("cannot handle this source")
        return await super().warm(sources, wait=wait, tags=tags)


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def statuses(url: str) -> dict[int, tuple[str, str | None]]:
    database = create_database_for(url)
    await database.connect()
    try:
        rows = await database.fetch_all("SELECT id, thumbnail_status, thumbnail_error FROM pipeline_step_outputs")
        return {int(row["id"]): (row["thumbnail_status"], row["thumbnail_error"]) for row in rows}
    finally:
        await database.disconnect()


def create_database_for(url: str) -> Any:
    from thumbs.settings import Settings

    return create_database(Settings(_env_file=None, database_url=url))


async def test_bad_rows_are_failed_with_a_reason_and_the_job_finishes(
    kind: str, tmp_path: Path, make_settings: Any, origin: Any
) -> None:
    good = [f"{origin.base_url}/ok/{n}.jpg" for n in range(7)]
    poison = f"{origin.base_url}/poison.jpg"
    bad_urls = [
        None,
        "not a url",
        "ftp://example.com/a.jpg",
        "http://",
        "http://elsewhere.example/a.jpg",
        "data:image/png;base64," + "A" * 5000,
        f"{origin.base_url}/with space.jpg",
        "http://[::1",
    ]
    rows = [(url, WHEN + dt.timedelta(minutes=n), n, "s") for n, url in enumerate([*good, poison, *bad_urls])]
    with fresh_database(kind, tmp_path) as url:
        await create_legacy_table(url, rows)
        settings = make_settings(database_url=url)
        in_thread(lambda: run_migrations(settings))
        warm = PoisonWarmClient({poison})
        progress = await run_backfill(settings, warm, batch_size=4, retry_delays=(0.0,))
        # The NULL-url row was marked failed by the migration: a plain job does not walk it.
        total = len(rows) - 1
        assert progress.status == "done" and progress.total == total
        assert (progress.done, progress.failed) == (len(good), total - len(good))
        assert progress.done + progress.failed == progress.total
        asked = {source for sources, _ in warm.calls for source in sources}
        assert asked <= {*good, poison, PROBE_SOURCE}  # refused ones never sent
        warmed = {source: n for source, n in warm.completed.items() if source != PROBE_SOURCE}
        assert sorted(warmed) == sorted(good) and set(warmed.values()) == {1}

        states = await statuses(url)
        assert [states[n + 1][0] for n in range(len(good))] == ["ready"] * len(good)
        assert states[len(good) + 1] == ("failed", "warm_error: ValueError: cannot handle this source")
        for n, bad in enumerate(bad_urls):
            status, error = states[len(good) + 2 + n]
            assert status == "failed" and error, (bad, error)
            assert error.startswith("no_url" if bad is None else ("invalid_url", "source_not_allowed")), (bad, error)

        # Nothing left for a plain job; --retry-failed takes every failed row again, and now the poison is fixed.
        again = await run_backfill(settings, warm, batch_size=4)
        assert (again.total, again.done, again.failed) == (0, 0, 0)
        warm.poison.clear()
        retried = await run_backfill(settings, warm, batch_size=4, retry_failed=True)
        assert retried.retry_failed and retried.status == "done"
        assert (retried.total, retried.done, retried.failed) == (len(bad_urls) + 1, 1, len(bad_urls))
        assert (await statuses(url))[len(good) + 1] == ("ready", None)


async def test_a_batch_of_only_poison_is_failed_when_the_warm_path_answers(harness: Any, origin_url: Any) -> None:
    from tests.api.seed import seed

    await seed(harness.api.database, origin_url(""), 3)
    sources = [origin_url(f"/seed/{n}.jpg") for n in range(3)]
    warm = PoisonWarmClient(set(sources))
    progress = await run_backfill(harness.settings, warm, batch_size=10, retry_delays=(0.0,))
    assert (progress.status, progress.done, progress.failed) == ("done", 0, 3)
    assert progress.last_error is None


async def test_an_outage_is_still_a_pause_not_failures(harness: Any, origin_url: Any) -> None:
    from tests.api.seed import seed

    await seed(harness.api.database, origin_url(""), 3)
    progress = await run_backfill(harness.settings, RecordingWarmClient(broken=True), retry_delays=(0.0,))
    assert (progress.status, progress.done, progress.failed) == ("running", 0, 0)
    assert progress.last_error is not None and "unreachable" in progress.last_error


async def test_urls_longer_than_any_source_are_failed_without_being_read(harness: Any, origin_url: Any) -> None:
    """A legacy url of megabytes is never a source: the batch query leaves it in the database (it read
    each whole: 50 rows of 10 MB took the backfill from 92 to 590 MB), and the row fails with why."""
    import sqlalchemy as sa

    from library_api import images
    from library_api.backfill import Backfill

    base = origin_url("/long/")
    urls = {"huge": base + "a" * 2_000_000, "over": base + "b" * (4097 - len(base)),
            "at": base + "c" * (4096 - len(base)), "plain": base + "d.png"}
    ids = {}
    for n, (name, url) in enumerate(urls.items()):
        ids[name] = await harness.api.database.execute(
            sa.insert(images.images).values(url=url, created_at=WHEN + dt.timedelta(minutes=n)))
    warm = RecordingWarmClient()
    progress = await run_backfill(harness.settings, warm, batch_size=10, retry_delays=(0.0,))
    assert (progress.status, progress.done, progress.failed) == ("done", 2, 2)
    assert {source for sources, _ in warm.calls for source in sources} <= {urls["at"], urls["plain"], PROBE_SOURCE}
    rows = {int(row["id"]): row for row in await harness.api.database.fetch_all(sa.select(images.images))}
    for name in ("huge", "over"):
        assert (rows[ids[name]]["thumbnail_status"], rows[ids[name]]["thumbnail_error"]) == (
            "failed", "invalid_url: url is longer than 4096 bytes"), name
        assert rows[ids[name]]["url"] == urls[name]  # kept as stored
    failures = await Backfill(harness.api.database, harness.settings, warm).recent_failures(progress.id)
    assert {failure["url"] for failure in failures} == {
        f"<url of {len(urls[name])} bytes: image {ids[name]}>" for name in ("huge", "over")}


class OddSizesWarmClient(RecordingWarmClient):
    """A warm path that reports sizes and colours no column takes (a remote /warm's JSON is not checked)."""

    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        self.calls.append((list(sources), wait))
        odd: list[tuple[Any, Any, Any]] = [(2**31, 2**63, "red"), (-1, 0, "#12345"), ("640", 1.5, 7),
                                           (True, None, None)]
        return [WarmOutcome(source=source, ok=True, width=odd[n % len(odd)][0], height=odd[n % len(odd)][1],
                            color=odd[n % len(odd)][2]) for n, source in enumerate(sources)]


async def test_sizes_and_colours_no_column_takes_are_not_written(harness: Any, origin_url: Any) -> None:
    """A width past int4 made PostgreSQL (past int64: SQLite) refuse the whole batch's write: the
    backfill raised and its job stopped at that batch (ingest records outcomes with the same update).
    Only sizes from 1 to 2**31 - 1 and #rrggbb colours are written; the thumbnail is ready either way."""
    from tests.api.seed import seed

    await seed(harness.api.database, origin_url(""), 4)
    progress = await asyncio.wait_for(
        run_backfill(harness.settings, OddSizesWarmClient(), batch_size=10, retry_delays=(0.0,)), 30)
    assert (progress.status, progress.done, progress.failed) == ("done", 4, 0)
    page = (await harness.client.get("/api/library/images")).json()
    assert [(image["thumbnail_status"], image["width"], image["height"], image["color"])
            for image in page["images"]] == [("ready", None, None, None)] * 4
    rows = await harness.api.database.fetch_all("SELECT width, height, color FROM pipeline_step_outputs")
    assert {(row["width"], row["height"], row["color"]) for row in rows} == {(None, None, None)}


class OddFailuresWarmClient(RecordingWarmClient):
    """A warm path whose failures carry an error code and detail no column takes as they are."""

    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        self.calls.append((list(sources), wait))
        odd: list[tuple[Any, Any]] = [("e" * 100, "d" * 10_000), (123, {"nested": True}), ("", None), (None, "")]
        return [WarmOutcome(source=source, ok=False, error=odd[n % len(odd)][0], detail=odd[n % len(odd)][1])
                for n, source in enumerate(sources)]


async def test_failures_with_odd_error_codes_are_recorded_and_the_job_finishes(harness: Any, origin_url: Any) -> None:
    """The failure record's error is a VARCHAR(64): PostgreSQL refused a longer code (or one that is no
    string) for the whole batch's write, and the job stopped at that batch."""
    from tests.api.seed import seed

    await seed(harness.api.database, origin_url(""), 4)
    progress = await asyncio.wait_for(
        run_backfill(harness.settings, OddFailuresWarmClient(), batch_size=10, retry_delays=(0.0,)), 30)
    assert (progress.status, progress.done, progress.failed) == ("done", 0, 4)
    page = (await harness.client.get("/api/library/images")).json()
    assert {image["thumbnail_status"] for image in page["images"]} == {"failed"}
    failures = (await harness.client.get(f"/api/library/generate-thumbnails/{progress.id}",
                                         headers={"authorization": "Bearer admin-token"})).json()["recent_failures"]
    assert len(failures) == 4
    for failure in failures:
        assert isinstance(failure["error"], str) and 0 < len(failure["error"]) <= 64, failure["error"]
        assert failure["detail"] is None or isinstance(failure["detail"], str)
