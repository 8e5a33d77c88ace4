"""Bad parameters, bodies and methods: a JSON 4xx that says what is wrong, nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from proxy.urls import MAX_URL_LENGTH
from tests.api.conftest import Harness
from tests.api.seed import seed

BAD_QUERIES = [
    {"limit": "-1"},
    {"limit": "0"},
    {"limit": "201"},
    {"limit": "abc"},
    {"limit": "1.5"},
    {"limit": " 5"},
    {"limit": "99999999999999999999999"},
    {"limit": "\uff15"},  # a full-width digit is not an ASCII integer
    {"offset": "-10"},
    {"offset": "x"},
    {"offset": "4294967296"},
    {"cursor": "not-a-cursor"},
    {"cursor": "W10"},  # base64 of "[]"
    {"cursor": "WyJ4IiwxLDBd"},  # ["x",1,0]
    {"cursor": "x" * 500},
    {"cursor": "WyIyMDI1LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxLDBd", "offset": "5"},  # cursor and offset
]


@pytest.mark.parametrize("query", BAD_QUERIES, ids=lambda q: ",".join(f"{k}={v[:12]}" for k, v in q.items()))
async def test_bad_listing_parameters_are_400(harness: Harness, query: dict[str, str]) -> None:
    response = await harness.client.get("/api/library/images", params=query)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] in {"invalid_parameter", "invalid_cursor"}
    assert body["detail"]


async def test_limit_bounds_are_accepted(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 3)
    for limit, expected in (("1", 1), ("200", 3)):
        page = (await harness.client.get("/api/library/images", params={"limit": limit})).json()
        assert page["limit"] == int(limit) and len(page["images"]) == expected


async def test_sql_injection_strings_are_inert(harness: Harness, origin_url: Any) -> None:
    await seed(harness.api.database, origin_url(""), 3)
    for value in ("1; DROP TABLE pipeline_step_outputs", "1' OR '1'='1", "1)--"):
        response = await harness.client.get("/api/library/images", params={"limit": value, "offset": value})
        assert response.status_code == 400
        response = await harness.client.get("/api/library/images", params={"cursor": value})
        assert response.status_code == 400
    # Stored verbatim as data, never executed.
    nasty = "x'); DROP TABLE pipeline_step_outputs; --"
    created = await harness.add(origin_url("/inject.jpg?q=%27%3B--"), pipeline_id=nasty, step="' OR 1=1 --")
    assert created["pipeline_id"] == nasty
    page = (await harness.client.get("/api/library/images")).json()
    assert page["total"] == 4 and page["images"][0]["pipeline_id"] == nasty


def body(url: str, **fields: Any) -> dict[str, Any]:
    return {"url": url, "pipeline_id": "p", "step": "s", **fields}


async def test_bad_bodies_are_400_and_store_nothing(harness: Harness, origin_url: Any) -> None:
    good = origin_url("/ok.jpg")
    cases: list[tuple[Any, str]] = [
        ({"pipeline_id": "p", "step": "s"}, "invalid_url"),
        (body(""), "invalid_url"),
        (body(123), "invalid_url"),  # type: ignore[arg-type]
        (body("ftp://example.com/a.jpg"), "source_not_allowed"),
        (body("file:///etc/passwd"), "source_not_allowed"),
        (body("javascript:alert(1)"), "source_not_allowed"),
        (body("http://evil.example/a.jpg"), "source_not_allowed"),
        (body("http://user:pw@" + good.removeprefix("http://")), "source_not_allowed"),
        (body(good + "/" + "a" * MAX_URL_LENGTH), "invalid_url"),  # one cap for the API and the proxy
        # Non-ASCII letters are percent-encoded and stored (test_canonical_urls); a format character is not a URL's.
        (body(good.replace("ok", "o\u200bk")), "invalid_url"),
        (body(good + " x"), "invalid_url"),
        (body("not a url"), "invalid_url"),
        ({"url": good, "step": "s"}, "invalid_body"),
        ({"url": good, "pipeline_id": "", "step": "s"}, "invalid_body"),
        ({"url": good, "pipeline_id": 7, "step": "s"}, "invalid_body"),
        ({"url": good, "pipeline_id": "p" * 201, "step": "s"}, "invalid_body"),
        ({"url": good, "pipeline_id": "p"}, "invalid_body"),
        ({"url": good, "pipeline_id": "p\x00", "step": "s"}, "invalid_body"),  # PostgreSQL text has no NUL
        ({"url": good, "pipeline_id": "p", "step": "a\x07b"}, "invalid_body"),
        (body(good, width=-1), "invalid_body"),
        (body(good, width=0), "invalid_body"),
        (body(good, height="10"), "invalid_body"),
        (body(good, height=True), "invalid_body"),
        (body(good, width=1.5), "invalid_body"),
        (body(good, width=10**12), "invalid_body"),
        ([good], "invalid_json"),
        ("just a string", "invalid_json"),
        (None, "invalid_json"),
    ]
    for payload, code in cases:
        response = await harness.client.post("/api/library/images", json=payload)
        assert response.status_code == 400, (payload, response.text)
        assert response.json()["error"] == code, (payload, response.json())
    assert (await harness.client.get("/api/library/images")).json()["total"] == 0
    assert harness.warm.calls == []


@pytest.mark.parametrize("raw", [b"", b"{", b"{'url': 1}", b"\xff\xfe", b"[1,2", b'{"url": "a"', b"nul"], ids=repr)
async def test_malformed_json_is_400(harness: Harness, raw: bytes) -> None:
    response = await harness.client.post(
        "/api/library/images", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


async def test_oversized_body_is_413(harness: Harness, origin_url: Any) -> None:
    huge = body(origin_url("/big.jpg"), step="s" * 100_000)
    response = await harness.client.post("/api/library/images", json=huge)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"

    async def chunks() -> Any:  # no Content-Length: the cap holds while streaming
        for _ in range(100):
            yield b" " * 1024

    response = await harness.client.post("/api/library/images", content=chunks())
    assert response.status_code == 413
    assert (await harness.client.get("/api/library/images")).json()["total"] == 0


async def test_unsupported_methods_are_json_405(harness: Harness) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        response = await harness.client.request(method, "/api/library/images")
        assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
        assert "GET" in response.headers["allow"]


async def test_duplicate_url_is_stored_once(harness: Harness, origin_url: Any) -> None:
    url = origin_url("/dup.jpg")
    first = await harness.client.post("/api/library/images", json=body(url))
    second = await harness.client.post("/api/library/images", json=body(url, step="other"))
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    page = (await harness.client.get("/api/library/images")).json()
    assert page["total"] == 1 and len(page["images"]) == 1


@pytest.fixture
def ingest_settings(make_settings: Any, database_url: str) -> Any:
    return make_settings(database_url=database_url, ingest_token="ingest-token")


async def test_ingest_token_when_set_is_required(ingest_settings: Any, origin_url: Any) -> None:
    from library_api.app import create_api, mount_api
    from tests.api.warm import RecordingWarmClient

    api = create_api(ingest_settings, RecordingWarmClient())
    async with api.component.lifespan():
        transport = httpx.ASGITransport(app=mount_api(api))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            payload = {"url": origin_url("/ingest.jpg"), "pipeline_id": "p", "step": "s"}
            missing = await client.post("/api/library/images", json=payload)
            wrong = await client.post("/api/library/images", json=payload, headers={"authorization": "Bearer nope"})
            right = await client.post(
                "/api/library/images", json=payload, headers={"authorization": "Bearer ingest-token"}
            )
            listing = (await client.get("/api/library/images")).json()
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    assert right.status_code == 201
    assert listing["total"] == 1
