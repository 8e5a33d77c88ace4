"""POST /api/library/images warms the thumbnail in the background and records the outcome."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.conftest import Harness


async def listed(harness: Harness) -> dict[int, dict[str, Any]]:
    page = (await harness.client.get("/api/library/images", params={"limit": 200})).json()
    return {image["id"]: image for image in page["images"]}


async def test_ingest_answers_before_the_warm_finishes_then_records_it(harness: Harness, origin_url: Any) -> None:
    harness.warm.hold = asyncio.Event()
    created = await harness.add(origin_url("/fresh.jpg"))  # returns although the warm is held
    assert created["thumbnail_status"] == "pending" and created["color"] is None
    await asyncio.wait_for(harness.warm.entered.wait(), 5)
    assert harness.warm.calls == [([origin_url("/fresh.jpg")], True)]
    harness.warm.hold.set()
    await asyncio.wait_for(harness.api.ingest.idle(), 5)
    image = (await listed(harness))[created["id"]]
    assert image["thumbnail_status"] == "ready"
    assert (image["width"], image["height"], image["color"]) == (640, 480, "#336699")


async def test_ingest_records_failures_with_their_reason(harness: Harness, origin_url: Any) -> None:
    bad = origin_url("/broken.jpg")
    harness.warm.failures[bad] = ("origin_status", "origin answered 404")
    created = await harness.add(bad, width=100, height=50)
    good = await harness.add(origin_url("/fine.jpg"))
    await asyncio.wait_for(harness.api.ingest.idle(), 5)
    images = await listed(harness)
    assert images[created["id"]]["thumbnail_status"] == "failed"
    assert (images[created["id"]]["width"], images[created["id"]]["height"]) == (100, 50)  # kept
    assert images[good["id"]]["thumbnail_status"] == "ready"
    error = await harness.api.database.fetch_val(
        "SELECT thumbnail_error FROM pipeline_step_outputs WHERE id = :id", {"id": created["id"]}
    )
    assert error == "origin_status: origin answered 404"


async def test_warm_path_down_leaves_images_pending_for_the_backfill(harness: Harness, origin_url: Any) -> None:
    harness.warm.broken = True
    created = await harness.add(origin_url("/later.jpg"))
    await asyncio.wait_for(harness.api.ingest.idle(), 5)
    assert harness.warm.calls, "the warm path was asked"
    assert (await listed(harness))[created["id"]]["thumbnail_status"] == "pending"


async def test_many_concurrent_ingests_are_all_stored_and_warmed(harness: Harness, origin_url: Any) -> None:
    urls = [origin_url(f"/many/{n}.jpg") for n in range(60)]
    results = await asyncio.gather(*(harness.add(url) for url in urls))
    assert len({image["id"] for image in results}) == 60
    await asyncio.wait_for(harness.api.ingest.idle(), 10)
    images = await listed(harness)
    assert len(images) == 60 and all(image["thumbnail_status"] == "ready" for image in images.values())
    assert sorted(harness.warm.completed) == sorted(urls)
    assert (await harness.client.get("/api/library/images")).json()["total"] == 60
