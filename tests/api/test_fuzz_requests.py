"""Fuzz what a request can reach in the library API: never a 500, always a JSON answer with a 2xx or 4xx.

Query parameters (any text, raw query strings, cursors made of arbitrary JSON), job ids in the
path, start-job bodies and ingest bodies, and methods. Runs on SQLite and PostgreSQL, against a
library that has dated and undated images in it.
"""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

import orjson
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from library_api.paging import decode_cursor
from tests.api.conftest import Harness
from tests.api.seed import seed

ADMIN = {"authorization": "Bearer admin-token"}
IMAGES = "/api/library/images"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
        st.datetimes().map(lambda value: value.isoformat()),
        st.datetimes(timezones=st.timezones()).map(lambda value: value.isoformat()),
    ),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


def as_cursor(value: Any) -> str:
    try:
        payload = orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits
        payload = repr(value).encode()
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


cursor_like = st.one_of(
    st.text(max_size=60),
    json_values.map(as_cursor),
    st.tuples(json_values, json_values, json_values).map(lambda three: as_cursor(list(three))),
    st.tuples(
        st.one_of(st.none(), st.datetimes(timezones=st.timezones()).map(lambda value: value.isoformat())),
        st.integers(min_value=-5, max_value=2**64),
        st.integers(min_value=-5, max_value=2**32),
    ).map(lambda three: as_cursor(list(three))),
)
param_values = st.one_of(st.text(max_size=24), st.integers().map(str), cursor_like)
listing_params = st.dictionaries(
    st.sampled_from(["limit", "offset", "cursor", "until", "newer_than", "x"]), param_values, max_size=4
)


async def library(harness: Harness, origin_url: Any) -> None:
    if (await harness.client.get(IMAGES)).json()["total"]:
        return
    await seed(harness.api.database, origin_url(""), 12, same_time_every=3)
    # Undated rows (legacy dates that could not be read) are part of every walk.
    await harness.api.database.execute("UPDATE pipeline_step_outputs SET created_at = NULL WHERE id IN (2, 5, 11)")


def assert_json_answer(response: Any, allowed: set[int]) -> dict[str, Any]:
    assert response.status_code in allowed, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    if response.status_code >= 400:
        assert set(body) == {"error", "detail"}
    return body


@FUZZ
@given(params=listing_params)
async def test_listing_query_parameters(harness: Harness, origin_url: Any, params: dict[str, str]) -> None:
    await library(harness, origin_url)
    body = assert_json_answer(await harness.client.get(IMAGES, params=params), {200, 400})
    if "error" in body:
        assert body["error"] in {"invalid_parameter", "invalid_cursor"}
    else:
        assert len(body["images"]) <= body["limit"] and body["total"] == 12
        for name in ("next_cursor", "head_cursor"):
            if body[name] is not None:
                decode_cursor(body[name])  # whatever came in, what goes out is a cursor we read back


@FUZZ
@given(raw=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80))
async def test_raw_query_strings(harness: Harness, origin_url: Any, raw: str) -> None:
    await library(harness, origin_url)
    assert_json_answer(await harness.client.get(IMAGES + "?" + raw.replace("#", "%23")), {200, 400})


@FUZZ
@given(segment=st.text(min_size=1, max_size=40))
async def test_job_ids_in_the_path(harness: Harness, segment: str) -> None:
    note(repr(segment))
    path = "/api/library/generate-thumbnails/" + urllib.parse.quote(segment, safe="")
    response = await harness.client.get(path, headers=ADMIN)
    if "/" in segment or "\n" in segment:
        # A decoded %2F (or a newline, which the route pattern does not take) is another path:
        # the router's redirect or plain not-found, never the handler.
        assert response.status_code in (307, 404), response.status_code
        return
    assert_json_answer(response, {200, 404})
    if response.status_code == 200:
        assert segment.isascii() and segment.isdigit(), segment  # only ASCII digits name a job


@FUZZ
@given(body=json_values)
async def test_start_job_bodies(harness: Harness, origin_url: Any, body: Any) -> None:
    await library(harness, origin_url)
    response = await harness.client.post("/api/library/generate-thumbnails", headers=ADMIN, json=body)
    assert_json_answer(response, {200, 202, 400})


@FUZZ
@given(body=json_values, url=st.one_of(st.text(max_size=40), st.sampled_from(["http://", "http://[::1", "ftp://a"])))
async def test_ingest_bodies(harness: Harness, body: Any, url: str) -> None:
    response = await harness.client.post(IMAGES, json=body)
    assert_json_answer(response, {200, 201, 400})
    response = await harness.client.post(IMAGES, json={"url": url, "pipeline_id": "p", "step": "s"})
    assert_json_answer(response, {200, 201, 400})


@FUZZ
@given(
    method=st.sampled_from(["PUT", "PATCH", "DELETE", "OPTIONS"]),
    path=st.sampled_from([IMAGES, "/api/library/generate-thumbnails", "/api/library/generate-thumbnails/1"]),
)
async def test_other_methods(harness: Harness, method: str, path: str) -> None:
    assert_json_answer(await harness.client.request(method, path, headers=ADMIN), {405})
