"""Ingest de-duplicates by the canonical url (RFC 3986 section 6), legacy spellings included."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from library_api.app import create_api, mount_api
from library_api.canonical import canonical_url
from library_api.migrate import run_migrations
from tests.api.conftest import Harness, in_thread
from tests.api.legacy import create_legacy_table, fresh_database
from tests.api.warm import RecordingWarmClient
from thumbs.settings import Settings

HOST = "images.example"  # never fetched: the warm client here is a recording one
IDN = "bücher.example"
IDN_ASCII = "xn--bcher-kva.example"
ALLOWED = [HOST, IDN_ASCII, "[2001:db8::1]:8080"]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, allowed_sources=ALLOWED)


SAME = {
    "http://images.example/a.png": [
        "HTTP://Images.EXAMPLE/a.png",
        "http://images.example:80/a.png",
        "http://images.example:/a.png",
        "http://images.example/a.png#frag",
        "http://images.example/x/../a.png",
        "http://images.example/./x/y/../../a.png",
        "http://images.example/x/%2E%2E/a.png",
        "http://images.example/%61.png",
    ],
    "https://images.example/": ["https://images.example", "https://images.example:443", "HTTPS://images.example/."],
    "http://images.example/a/": ["http://images.example/a/b/..", "http://images.example/a/."],
    "http://images.example/%2F~x.png?b=%2F&a=1+2": ["http://images.example/%2f%7ex.png?b=%2f&a=1+2#top"],
    "http://xn--bcher-kva.example/a.png": ["http://bücher.example/a.png", "http://XN--BCHER-KVA.example/a.png"],
    "http://images.example/%C3%A4.png": ["http://images.example/ä.png", "http://images.example/%c3%a4.png"],
    "http://[2001:db8::1]:8080/a.png": ["http://[2001:DB8:0:0:0:0:0:1]:8080/a.png"],
}
# Different resources: nothing reordered, reserved characters never decoded, '+' is not a space.
DIFFERENT = [
    ("http://images.example/a.png?x=1&y=2", "http://images.example/a.png?y=2&x=1"),
    ("http://images.example/a%2Fb.png", "http://images.example/a/b.png"),
    ("http://images.example/a.png?q=a%26b", "http://images.example/a.png?q=a&b"),
    ("http://images.example/a+b.png", "http://images.example/a%20b.png"),
    ("http://images.example/a.png", "http://images.example/A.png"),
    ("http://images.example/a", "http://images.example/a/"),
    ("http://images.example:8080/a.png", "http://images.example/a.png"),
    ("https://images.example/a.png", "http://images.example/a.png"),
    ("http://images.example/a.png?", "http://images.example/a.png"),
]


@pytest.mark.parametrize(("canonical", "spellings"), list(SAME.items()))
def test_equivalent_spellings_have_one_canonical_form(canonical: str, spellings: list[str]) -> None:
    assert canonical_url(canonical) == canonical
    for spelling in spellings:
        assert canonical_url(spelling) == canonical, spelling


@pytest.mark.parametrize(("one", "other"), DIFFERENT)
def test_different_resources_keep_different_forms(one: str, other: str) -> None:
    assert canonical_url(one) is not None and canonical_url(one) != canonical_url(other)


@pytest.mark.parametrize(
    "junk",
    ["javascript:alert(1)", "file:///etc/passwd", "not a url", "http://[x", "http://u:p@images.example/a",
     "http://images.example/a b", "http://images.example/\x00", "http://images.example:99999/", "http://h\uff0fx/",
     "http://[fe80::1%25eth0]/", ""],
)
def test_what_is_not_an_http_url_has_no_canonical_form(junk: str) -> None:
    assert canonical_url(junk) is None


async def test_every_spelling_of_one_image_is_one_row(harness: Harness) -> None:
    for canonical, spellings in SAME.items():
        first = await harness.client.post(
            "/api/library/images", json={"url": spellings[0], "pipeline_id": "p", "step": "s"}
        )
        assert first.status_code == 201, first.text
        assert first.json()["url"] == canonical  # stored (and signed) in the canonical form
        for spelling in [canonical, *spellings[1:]]:
            again = await harness.client.post(
                "/api/library/images", json={"url": spelling, "pipeline_id": "p", "step": "s"}
            )
            assert again.status_code == 200, (spelling, again.text)
            assert again.json()["id"] == first.json()["id"]
    page = (await harness.client.get("/api/library/images", params={"limit": 200})).json()
    assert page["total"] == len(SAME) and sorted(image["url"] for image in page["images"]) == sorted(SAME)
    for one, other in DIFFERENT[:4]:
        ids = {(await harness.add(url))["id"] for url in (one, other)}
        assert len(ids) == 2, (one, other)


async def test_concurrent_ingests_of_spellings_of_one_url_make_one_row(harness: Harness) -> None:
    spellings = SAME["http://images.example/a.png"] * 3
    answers = await asyncio.gather(*(
        harness.client.post("/api/library/images", json={"url": url, "pipeline_id": "p", "step": "s"})
        for url in spellings
    ))
    assert sorted(answer.status_code for answer in answers) == [200] * (len(spellings) - 1) + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1


LEGACY = [
    # url, as a legacy writer stored it; the ingest that must find it (None: no ingest)
    ("HTTP://Images.Example/a.png", "http://images.example/a.png"),
    ("http://images.example/a.png#second-spelling", None),  # a legacy duplicate of the row above
    ("http://images.example:80/b.png", "http://images.example/b.png"),
    ("http://images.example/c.png", "http://images.example/x/../c.png"),  # already canonical
    ("http://images.example/%63/../d%2epng", "http://images.example/d.png"),
    ("http://bücher.example/e.png", "http://xn--bcher-kva.example/e.png"),
    ("javascript:alert(1)", None),
    ("http://IMAGES.example/f.png", None),
    ("http://images.example/f.png", "http://images.example/f.png#x"),  # the row holding the hash keeps it
    (None, None),
    # Over 4,096 bytes, so never listed: an ingest must not answer with it, but store a listed row.
    ("http://images.example/g.png#" + "x" * 5000, None),
]
NEW_ROW = "http://images.example/g.png"


async def snapshot(url: str) -> list[tuple[Any, ...]]:
    query = "SELECT id, url, created_at, pipeline_id, step FROM pipeline_step_outputs ORDER BY id"
    if url.startswith("sqlite"):
        import sqlite3

        connection = sqlite3.connect(url.split(":///", 1)[1])
        try:
            return [tuple(row) for row in connection.execute(query)]
        finally:
            connection.close()
    pg = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await pg.fetch(query.replace("pipeline_id", "pipeline_id::text"))]
    finally:
        await pg.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_an_ingest_finds_the_legacy_row_stored_in_another_spelling(
    kind: str, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    created = dt.datetime(2024, 5, 1, 12, 0)
    rows = [(url, created + dt.timedelta(minutes=n), n, "legacy") for n, (url, _) in enumerate(LEGACY)]
    with fresh_database(kind, tmp_path) as url:
        await create_legacy_table(url, rows)
        settings = make_settings(database_url=url, allowed_sources=ALLOWED)
        in_thread(lambda: run_migrations(settings))
        before = await snapshot(url)
        in_thread(lambda: run_migrations(settings))  # again: a no-op
        warm = RecordingWarmClient()
        api = create_api(settings, warm)
        async with api.component.lifespan():
            transport = httpx.ASGITransport(app=mount_api(api))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                for legacy_id, (stored, ingest) in enumerate(LEGACY, start=1):
                    if ingest is None:
                        continue
                    answer = await client.post(
                        "/api/library/images", json={"url": ingest, "pipeline_id": "p", "step": "s"}
                    )
                    assert answer.status_code == 200, (stored, ingest, answer.status_code, answer.text)
                    assert (answer.json()["id"], answer.json()["url"]) == (legacy_id, stored)
                answer = await client.post(
                    "/api/library/images", json={"url": NEW_ROW, "pipeline_id": "p", "step": "s"}
                )
                assert answer.status_code == 201 and answer.json()["id"] > len(LEGACY), answer.text[:200]
                await asyncio.wait_for(api.ingest.idle(), 5)
                page = (await client.get("/api/library/images", params={"limit": 200})).json()
        # Warmed as stored: the spelling the listing signs and the outcome is recorded for.
        assert set(warm.warmed()) <= {stored for stored, _ in LEGACY} | {NEW_ROW}
        after = await snapshot(url)
    assert after[:-1] == before and len(after) == len(LEGACY) + 1  # nothing stored changed, one row added
    listed = [stored for stored, _ in LEGACY if stored is not None and stored.lower().startswith("http")]
    assert page["total"] == len(listed) and NEW_ROW in {image["url"] for image in page["images"]}
