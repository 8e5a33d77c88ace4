"""The listing filtered by pipeline and step: pages, total, cursors and newer_than all filtered."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Harness


async def test_pipeline_and_step_filters(harness: Harness, origin_url: Any) -> None:
    for n in range(9):
        await harness.add(origin_url(f"/filter-{n}.jpg"), pipeline_id=f"p{n % 3}", step="final" if n % 2 else "draft")
    everything = (await harness.client.get("/api/library/images")).json()
    p1 = (await harness.client.get("/api/library/images", params={"pipeline_id": "p1", "limit": 2})).json()
    assert p1["total"] == 3 and len(p1["images"]) == 2 and {i["pipeline_id"] for i in p1["images"]} == {"p1"}
    rest = (await harness.client.get("/api/library/images",
                                     params={"pipeline_id": "p1", "cursor": p1["next_cursor"], "limit": 2})).json()
    assert [i["pipeline_id"] for i in rest["images"]] == ["p1"] and rest["next_cursor"] is None
    both = (await harness.client.get("/api/library/images", params={"pipeline_id": "p1", "step": "final"})).json()
    assert {(i["pipeline_id"], i["step"]) for i in both["images"]} == {("p1", "final")}
    assert both["total"] == len(both["images"])
    assert everything["total"] == 9
    none = (await harness.client.get("/api/library/images", params={"pipeline_id": "nope"})).json()
    assert none["total"] == 0 and none["images"] == []
    head = p1["head_cursor"]
    await harness.add(origin_url("/filter-new-a.jpg"), pipeline_id="p1", step="draft")
    await harness.add(origin_url("/filter-new-b.jpg"), pipeline_id="p2", step="draft")
    newer = (await harness.client.get("/api/library/images", params={"pipeline_id": "p1", "newer_than": head})).json()
    assert newer["count"] == 1 and [i["pipeline_id"] for i in newer["images"]] == ["p1"]
    for bad in ("p" * 201, "a\x00b"):
        response = await harness.client.get("/api/library/images", params={"pipeline_id": bad})
        assert response.status_code == 400 and response.json()["error"] == "invalid_parameter"
