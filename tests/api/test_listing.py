"""GET /api/library/images: the PRD's shape, offset and cursor paging, caching headers."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from proxy.urls import parse_thumbnail_path, thumbnail_url
from proxy.variants import CELL, CELL_2X
from tests.api.conftest import Harness
from tests.api.seed import seed


async def walk_offset(harness: Harness, limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = await harness.client.get("/api/library/images", params={"limit": limit, "offset": offset})
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["limit"] == limit and page["offset"] == offset
        seen += page["images"]
        if len(page["images"]) < limit:
            return seen
        offset += limit


async def walk_cursor(harness: Harness, limit: int) -> tuple[list[dict[str, Any]], list[int]]:
    seen: list[dict[str, Any]] = []
    offsets: list[int] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await harness.client.get("/api/library/images", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        offsets.append(page["offset"])
        seen += page["images"]
        if page["next_cursor"] is None:
            return seen, offsets
        params = {"limit": limit, "cursor": page["next_cursor"]}


def newest_first(images: list[dict[str, Any]]) -> bool:
    keys = [(dt.datetime.fromisoformat(image["created_at"]), image["id"]) for image in images]
    return keys == sorted(keys, reverse=True)


async def test_empty_library(harness: Harness) -> None:
    response = await harness.client.get("/api/library/images")
    assert response.status_code == 200
    assert response.json() == {
        "images": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
        "next_cursor": None,
        "head_cursor": None,
    }


async def test_shape_of_an_ingested_image(harness: Harness, origin_url: Any) -> None:
    url = origin_url("/shape.jpg")
    await harness.add(url, width=800, height=600)
    page = (await harness.client.get("/api/library/images")).json()
    assert page["total"] == 1
    (image,) = page["images"]
    assert set(image) == {
        "id",
        "url",
        "thumbnail_url",
        "cell_thumbnail_url",
        "cell_thumbnail_url_2x",
        "created_at",
        "width",
        "height",
        "color",
        "pipeline_id",
        "step",
        "thumbnail_status",
    }
    assert image["url"] == url
    assert image["thumbnail_url"] == thumbnail_url(url, "test-secret", "http://thumbs.test")
    assert image["cell_thumbnail_url"] == thumbnail_url(url, "test-secret", "http://thumbs.test", CELL)
    assert image["cell_thumbnail_url_2x"] == thumbnail_url(url, "test-secret", "http://thumbs.test", CELL_2X)
    assert image["pipeline_id"] == "p1" and image["step"] == "s1"
    assert dt.datetime.fromisoformat(image["created_at"]).tzinfo is not None


async def test_offset_walk_sees_every_image_once_in_order_with_ties(harness: Harness, origin_url: Any) -> None:
    # Groups of 7 share a timestamp: only the id tie-break keeps pages stable.
    await seed(harness.api.database, origin_url(""), 130, same_time_every=7)
    seen = await walk_offset(harness, 20)
    assert len(seen) == 130
    assert len({image["id"] for image in seen}) == 130
    assert newest_first(seen)
    assert (await harness.client.get("/api/library/images")).json()["total"] == 130


async def test_cursor_walk_sees_every_image_once_in_order_with_ties(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 130, same_time_every=7)
    seen, offsets = await walk_cursor(harness, 20)
    assert [image["id"] for image in seen] == [image["id"] for image in await walk_offset(harness, 20)]
    assert len({image["id"] for image in seen}) == 130
    assert newest_first(seen)
    assert offsets == list(range(0, 130, 20))


async def test_cursor_walk_with_limit_dividing_total_ends_with_null_cursor(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 40)
    seen, offsets = await walk_cursor(harness, 20)
    assert len(seen) == 40 and offsets == [0, 20]


async def test_concurrent_inserts_during_cursor_walk_skip_nothing_older(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 100, same_time_every=3)
    before = {image["id"] for image in await walk_offset(harness, 200)}
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 15}
    page_number = 0
    while True:
        page = (await harness.client.get("/api/library/images", params=params)).json()
        seen += page["images"]
        # New images arrive (newest) while the client pages: through the API and concurrently.
        await asyncio.gather(*(harness.add(origin_url(f"/new/{page_number}-{n}.jpg")) for n in range(3)))
        page_number += 1
        if page["next_cursor"] is None:
            break
        params = {"limit": 15, "cursor": page["next_cursor"]}
    ids = [image["id"] for image in seen]
    assert len(ids) == len(set(ids)), "an image was repeated"
    assert before <= set(ids), "an older image was skipped"
    assert newest_first(seen)
    total = (await harness.client.get("/api/library/images")).json()["total"]
    assert total == 100 + 3 * page_number


async def test_offset_past_the_end_is_an_empty_page(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 5)
    page = (await harness.client.get("/api/library/images", params={"offset": 1000})).json()
    assert page["images"] == [] and page["total"] == 5 and page["next_cursor"] is None


async def test_thumbnail_url_follows_the_current_key_and_base(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 1)
    image = (await harness.client.get("/api/library/images")).json()["images"][0]
    harness.settings.secret = "rotated-secret"
    harness.settings.public_base_url = "https://cdn.example"
    rotated = (await harness.client.get("/api/library/images")).json()["images"][0]
    assert rotated["thumbnail_url"] != image["thumbnail_url"]
    assert rotated["thumbnail_url"].startswith("https://cdn.example/t/")
    path = rotated["thumbnail_url"].removeprefix("https://cdn.example")
    assert parse_thumbnail_path(path, ["rotated-secret"]).source == image["url"]


async def test_etag_revalidation_and_cache_control(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 3)
    first = await harness.client.get("/api/library/images")
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = await harness.client.get("/api/library/images", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and again.content == b""
    await harness.add(origin_url("/changed.jpg"))
    changed = await harness.client.get("/api/library/images", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["total"] == 4
