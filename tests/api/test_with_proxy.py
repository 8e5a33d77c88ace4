"""The API with the real proxy warm path: in-process warmer, and HttpWarmClient over /warm."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import pyvips
from starlette.applications import Starlette
from starlette.routing import Mount

from library_api.app import create_api
from library_api.backfill import PROBE_SOURCE, run_backfill
from library_api.warm_client import HttpWarmClient, WarmUnavailable
from proxy.app import create_proxy, create_proxy_app
from tests.api.seed import seed
from tests.support.images import jpeg, photo, solid
from tests.support.origin import Origin
from tests.support.servers import serve_in_thread
from thumbs.configs import proxy_config
from thumbs.settings import Settings


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """Proxy and API in one app, the API warming through the proxy's in-process warmer."""
    proxy = create_proxy(proxy_config(settings), warm_consumer=False)
    api = create_api(settings, proxy.warmer)
    app = Starlette(
        routes=[*proxy.component.routes, Mount("/api", routes=list(api.component.routes))],
        exception_handlers={**proxy.component.exception_handlers, **api.component.exception_handlers},
    )
    async with AsyncExitStack() as lifespans:
        await lifespans.enter_async_context(proxy.component.lifespan())
        await lifespans.enter_async_context(api.component.lifespan())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://thumbs.test") as client:
            yield api, client


async def test_ingest_warms_through_the_real_proxy(stack: Any, origin: Origin, settings: Settings) -> None:
    api, client = stack
    path = f"/real/{uuid.uuid4().hex}.jpg"  # the origin is shared by the session
    url = origin.add(path, jpeg(solid(300, 200, (0, 128, 128))), content_type="image/jpeg")
    created = await client.post("/api/library/images", json={"url": url, "pipeline_id": "p", "step": "s"})
    assert created.status_code == 201
    await asyncio.wait_for(api.ingest.idle(), 30)
    image = (await client.get("/api/library/images")).json()["images"][0]
    assert image["thumbnail_status"] == "ready"
    assert (image["width"], image["height"]) == (300, 200)
    red, green, blue = (int(image["color"][i : i + 2], 16) for i in (1, 3, 5))
    assert red < 30 and abs(green - 128) < 30 and abs(blue - 128) < 30
    assert origin.hits[path] == 1
    # The listed thumbnail URL is served by the proxy from what the warm stored: no second fetch.
    thumbnail = await client.get(image["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert max(pyvips.Image.new_from_buffer(thumbnail.content, "").width, 1) <= 200
    assert origin.hits[path] == 1


async def test_backfill_over_http_warm_client_and_the_real_proxy(
    make_settings: Any, settings: Settings, origin: Origin, tmp_path: Any
) -> None:
    proxy_settings = make_settings(data_dir=tmp_path / "proxy-data", database_url=settings.database_url)
    body = jpeg(photo(64, 48))
    prefix = f"/bf-{uuid.uuid4().hex}"
    for n in range(8):
        origin.add(f"{prefix}/seed/{n}.jpg", body, content_type="image/jpeg")
    # /seed/8.jpg is not on the origin: a per-image failure with the proxy's reason.
    api = create_api(settings, HttpWarmClient("http://unused.invalid/warm", "x"))
    async with api.component.lifespan():  # migrates SQLite; seeds through the API's database
        await seed(api.database, origin.base_url + prefix, 9)
    with serve_in_thread(create_proxy_app(proxy_config(proxy_settings), warm_consumer=False)) as proxy_base:
        client = HttpWarmClient(proxy_base + "/warm", "warm-token")
        try:
            progress = await run_backfill(settings, client, batch_size=4)
        finally:
            await client.aclose()
    assert (progress.status, progress.done, progress.failed) == ("done", 8, 1)
    assert all(origin.hits[f"{prefix}/seed/{n}.jpg"] == 1 for n in range(8))
    assert any(path.is_file() for path in (tmp_path / "proxy-data").rglob("*"))


async def test_http_warm_client_reports_outages_as_unavailable(origin: Origin) -> None:
    config = proxy_config(Settings(_env_file=None, secret="s", warm_token="right"))
    with serve_in_thread(create_proxy_app(config)) as base:
        wrong_token = HttpWarmClient(base + "/warm", "wrong")
        with pytest.raises(WarmUnavailable, match="403"):
            await wrong_token.warm([origin.base_url + "/x.jpg"], wait=True)
        await wrong_token.aclose()
        refused = HttpWarmClient(base + "/warm", "right")
        outcomes = await refused.warm(["http://not-allowed.example/a.jpg"], wait=False)
        assert len(outcomes) == 1 and not outcomes[0].ok and outcomes[0].error
        await refused.aclose()
    closed = HttpWarmClient("http://127.0.0.1:9/warm", "t")
    with pytest.raises(WarmUnavailable, match="unreachable"):
        await closed.warm(["http://a.example/x.jpg"], wait=True)
    await closed.aclose()


async def test_the_backfill_probe_is_answered_by_the_real_warm_endpoint() -> None:
    """The probe the backfill uses to tell a bad batch from an outage: refused per source, never fetched."""
    config = proxy_config(Settings(_env_file=None, secret="s", warm_token="right", allowed_sources=["*.example"]))
    with serve_in_thread(create_proxy_app(config)) as base:
        client = HttpWarmClient(base + "/warm", "right")
        try:
            (outcome,) = await client.warm([PROBE_SOURCE], wait=True)
        finally:
            await client.aclose()
    assert outcome.source == PROBE_SOURCE and not outcome.ok and outcome.error == "source_not_allowed"
