"""Fixtures for the proxy: an app in the test's event loop, unique origin paths, Redis settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from proxy.app import Proxy, create_proxy
from proxy.urls import thumbnail_path
from tests.support.origin import Origin
from thumbs.configs import proxy_config
from thumbs.settings import Settings


class Running:
    """A started proxy and a client that talks to it in-process (ASGI)."""

    def __init__(self, proxy: Proxy, client: httpx.AsyncClient, settings: Settings) -> None:
        self.proxy = proxy
        self.client = client
        self.settings = settings

    def path(self, source: str) -> str:
        return thumbnail_path(source, self.settings.secret)

    async def thumb(self, source: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(self.path(source), **kwargs)


@asynccontextmanager
async def running(settings: Settings, *, warm_consumer: bool = False) -> AsyncIterator[Running]:
    from starlette.applications import Starlette

    proxy = create_proxy(proxy_config(settings), warm_consumer=warm_consumer)
    app = Starlette(routes=list(proxy.component.routes), exception_handlers=dict(proxy.component.exception_handlers))
    async with proxy.component.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://thumbs.test") as client:
            yield Running(proxy, client, settings)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Origin paths private to one test (the origin is shared by the session)."""
    tag = uuid.uuid4().hex[:8]
    return lambda name: f"/{tag}/{name}"


@pytest.fixture
def redis_settings(
    make_settings: Callable[..., Settings], redis_url: str, redis_prefix: str
) -> Callable[..., Settings]:
    """Settings with the shared Redis under a prefix private to this test."""

    def make(**overrides: Any) -> Settings:
        values = {"redis_url": redis_url, "redis_prefix": f"{redis_prefix}{uuid.uuid4().hex[:8]}:"}
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def proxy(make_settings: Callable[..., Settings]) -> AsyncIterator[Running]:
    """A proxy with no Redis (memory + disk tiers, in-process queue)."""
    async with running(make_settings()) as started:
        yield started


__all__ = ["Origin", "Running", "running"]
