"""Closed by default: write endpoints need their tokens, JSON bodies only, CORS on the listing only."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.support.demo_server import clean_environment
from thumbs.app import create_app
from thumbs.settings import Settings

ALLOWED_ORIGIN = "https://playground.example"


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(ingest_open=False, cors_origins=[ALLOWED_ORIGIN])
    app = create_app(settings, warm_consumer=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://thumbs.test") as http:
            yield http


def serve(**environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "thumbs.cli", "serve"], env=clean_environment(**environment),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("missing", ["THUMBS_ADMIN_TOKEN", "THUMBS_WARM_TOKEN", "THUMBS_INGEST_TOKEN"])
def test_serve_refuses_to_start_with_a_write_endpoint_open(missing: str, tmp_path: object) -> None:
    tokens = {"THUMBS_ADMIN_TOKEN": "a", "THUMBS_WARM_TOKEN": "w", "THUMBS_INGEST_TOKEN": "i"}
    del tokens[missing]
    result = serve(THUMBS_SECRET="k", THUMBS_DATA_DIR=str(tmp_path), THUMBS_PORT="1", **tokens)
    assert result.returncode == 2
    assert missing in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr


def test_ingest_can_be_opened_only_by_its_own_setting(tmp_path: object) -> None:
    # With THUMBS_INGEST_OPEN the token check passes; the (bad) port then fails inside uvicorn, not at the check.
    result = serve(THUMBS_SECRET="k", THUMBS_DATA_DIR=str(tmp_path), THUMBS_ADMIN_TOKEN="a", THUMBS_WARM_TOKEN="w",
                   THUMBS_INGEST_OPEN="true", THUMBS_PORT="99999")
    assert "THUMBS_INGEST_TOKEN" not in result.stderr and "THUMBS_PORT" in result.stderr


async def test_ingest_without_token_or_open_setting_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/library/images", json={"url": "http://x.test/a.png", "pipeline_id": "p",
                                                                "step": "s"})
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert "THUMBS_INGEST_TOKEN" in response.json()["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/jsonx", None])
async def test_json_endpoints_take_only_application_json(make_settings: Callable[..., Settings],
                                                         content_type: str | None) -> None:
    """A cross-site form post (no preflight) cannot create rows or start jobs."""
    app = create_app(make_settings(), warm_consumer=False)
    body = b'{"url": "http://x.test/a.png", "pipeline_id": "p", "step": "s"}'
    headers = {} if content_type is None else {"content-type": content_type}
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t.test") as http:
            ingest = await http.post("/api/library/images", content=body, headers=headers)
            job = await http.post("/api/library/generate-thumbnails", content=b'{"batch_size": 5}',
                                  headers={**headers, "authorization": "Bearer admin-token"})
            listing = await http.get("/api/library/images")
    assert ingest.status_code == 415 and ingest.json()["error"] == "unsupported_media_type"
    assert job.status_code == 415
    assert listing.json()["total"] == 0


async def test_json_with_a_charset_is_accepted(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(), warm_consumer=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t.test") as http:
            response = await http.post("/api/library/images", content=b'{"url": 1}',
                                       headers={"content-type": "Application/JSON; charset=utf-8"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_url"


async def test_cors_is_for_the_listing_and_the_listed_origins_only(client: httpx.AsyncClient) -> None:
    allowed = await client.get("/api/library/images", headers={"origin": ALLOWED_ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "etag" in allowed.headers["access-control-expose-headers"].lower()
    other = await client.get("/api/library/images", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = await client.options("/api/library/images", headers={
        "origin": ALLOWED_ORIGIN, "access-control-request-method": "GET"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    write_preflight = await client.options("/api/library/images", headers={
        "origin": ALLOWED_ORIGIN, "access-control-request-method": "POST"})
    assert write_preflight.status_code == 400
    for path in ("/api/library/generate-thumbnails", "/healthz", "/api/openapi.json"):
        response = await client.get(path, headers={"origin": ALLOWED_ORIGIN})
        assert "access-control-allow-origin" not in response.headers, path
