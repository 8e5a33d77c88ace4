"""`until` pins the top of a walk (pages never shift under inserts), `newer_than` finds what arrived since."""

from __future__ import annotations

from typing import Any

import pytest

from library_api.images import count_newer
from library_api.paging import decode_cursor, encode_cursor
from tests.api.conftest import Harness
from tests.api.seed import seed

IMAGES = "/api/library/images"


async def get(harness: Harness, **params: Any) -> dict[str, Any]:
    response = await harness.client.get(IMAGES, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def ids(page: dict[str, Any]) -> list[int]:
    return [image["id"] for image in page["images"]]


async def test_head_cursor_is_the_first_row_and_null_on_an_empty_page(harness: Harness, origin_url: Any) -> None:
    assert (await get(harness))["head_cursor"] is None
    await seed(harness.api.database, origin_url(""), 5)
    page = await get(harness, limit=2, offset=1)
    position, _ = decode_cursor(page["head_cursor"])
    assert position.id == page["images"][0]["id"]
    assert (await get(harness, offset=50))["head_cursor"] is None


async def test_pages_under_until_do_not_shift_when_images_are_inserted(harness: Harness, origin_url: Any) -> None:
    # Groups of 4 share a timestamp: the bound must be on (created_at, id), not created_at alone.
    await seed(harness.api.database, origin_url(""), 40, same_time_every=4)
    first = await get(harness, limit=10)
    head = first["head_cursor"]
    before = [await get(harness, until=head, offset=offset, limit=10) for offset in range(0, 50, 10)]

    added = [await harness.add(origin_url(f"/after/{n}.jpg")) for n in range(3)]

    after = [await get(harness, until=head, offset=offset, limit=10) for offset in range(0, 50, 10)]
    assert [ids(page) for page in after] == [ids(page) for page in before]
    assert ids(after[0]) == ids(first)
    assert sum(len(ids(page)) for page in after) == 40
    # Without the bound the first page has shifted by the 3 new images.
    assert ids(await get(harness, limit=10))[:3] == [image["id"] for image in reversed(added)]
    # A cursor walk under until sees the same 40, in the same order.
    walked: list[int] = []
    params: dict[str, Any] = {"until": head, "limit": 7}
    while True:
        page = await get(harness, **params)
        walked += ids(page)
        if page["next_cursor"] is None:
            break
        params = {"until": head, "cursor": page["next_cursor"], "limit": 7}
    assert walked == [image_id for page in before for image_id in ids(page)]

    newer = await get(harness, newer_than=head, limit=10)
    assert ids(newer) == [image["id"] for image in reversed(added)]
    assert newer["count"] == 3 and newer["count_capped"] is False
    assert (await get(harness, newer_than=head, limit=2))["count"] == 3  # all of them, not the page
    assert len(ids(await get(harness, newer_than=head, limit=2))) == 2
    # Without newer_than there is no count.
    assert "count" not in first


async def test_until_is_inclusive_and_newer_than_is_strict(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 6, same_time_every=2)
    everything = ids(await get(harness))
    third = await get(harness, offset=2, limit=1)
    assert ids(await get(harness, until=third["head_cursor"])) == everything[2:]
    newer = await get(harness, newer_than=third["head_cursor"])
    assert ids(newer) == everything[:2] and newer["count"] == 2
    nothing = await get(harness, newer_than=(await get(harness, limit=1))["head_cursor"])
    assert nothing["images"] == [] and nothing["count"] == 0 and nothing["head_cursor"] is None


async def test_newer_than_count_is_capped(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 30)
    oldest = (await get(harness, offset=29, limit=1))["head_cursor"]
    position, _ = decode_cursor(oldest)
    assert await count_newer(harness.api.database, position, cap=10) == 10
    assert await count_newer(harness.api.database, position, cap=100) == 29


@pytest.mark.parametrize("name", ["until", "newer_than"])
async def test_bad_bounds_are_400_invalid_cursor(harness: Harness, name: str) -> None:
    good = encode_cursor(*decode_cursor("WyIyMDI1LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxLDBd"))
    assert (await harness.client.get(IMAGES, params={name: good})).status_code == 200
    for bad in ("x", "%%%", "W10", "eyJhIjoxfQ", "²", "A" * 500, "WyJub3QgYSBkYXRlIiwxLDBd", "WzEsMSwwXQ"):
        response = await harness.client.get(IMAGES, params={name: bad})
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"] == "invalid_cursor"


async def test_until_and_newer_than_across_undated_images(harness: Harness, origin_url: Any) -> None:
    # 10 images; 4 of them undated (listed last, newest id first): order 10 9 8 6 5 3 | 7 4 2 1.
    await seed(harness.api.database, origin_url(""), 10)
    await harness.api.database.execute("UPDATE pipeline_step_outputs SET created_at = NULL WHERE id IN (1, 2, 4, 7)")
    order = [10, 9, 8, 6, 5, 3, 7, 4, 2, 1]
    assert ids(await get(harness, limit=20)) == order
    for at in range(len(order)):
        head = (await get(harness, offset=at, limit=1))["head_cursor"]
        assert ids(await get(harness, until=head, limit=20)) == order[at:]
        for offset in range(0, 11, 3):  # offsets into the bounded list, across the dated/undated seam
            assert ids(await get(harness, until=head, offset=offset, limit=3)) == order[at:][offset : offset + 3]
        newer = await get(harness, newer_than=head, limit=20)
        assert ids(newer) == order[:at] and newer["count"] == at
    # A cursor walk in small pages crosses the seam without a gap or a repeat.
    walked: list[int] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        page = await get(harness, **params)
        walked += ids(page)
        if page["next_cursor"] is None:
            break
        params = {"limit": 4, "cursor": page["next_cursor"]}
    assert walked == order


async def test_until_total_drops_only_with_deletions_under_the_bound(harness: Harness, origin_url: Any) -> None:
    """`total` counts the images added above the bound, so 3 added and 3 deleted below cancel out in
    it; a picker paging by offset under the bound then skipped 3 images and showed 3 deleted ones."""
    await seed(harness.api.database, origin_url(""), 30)
    head = (await get(harness, limit=10))["head_cursor"]
    start = await get(harness, until=head, limit=10, offset=10)
    assert start["total"] == start["until_total"] == 30
    for n in range(3):
        await harness.add(origin_url(f"/above/{n}.jpg"))
    inserted = await get(harness, until=head, limit=10, offset=10)
    assert (inserted["total"], inserted["until_total"]) == (33, 30)  # added above the bound: nothing moved
    below = ids(start)[:3]
    for image_id in below:
        await harness.api.database.execute("DELETE FROM pipeline_step_outputs WHERE id = :id", {"id": image_id})
    both = await get(harness, until=head, limit=10, offset=10)
    assert (both["total"], both["until_total"]) == (30, 27)  # the total cannot tell; until_total can
    assert "until_total" not in await get(harness, limit=10)  # only under a bound
    filtered = await get(harness, until=head, limit=10, pipeline_id="nope")
    assert (filtered["total"], filtered["until_total"]) == (0, 0)
