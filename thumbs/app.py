"""The one-port embedded app: library API under /api, the proxy, and the built picker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import BaseRoute, Mount

from httpkit.component import Component
from library_api.app import create_api
from proxy.app import create_proxy
from thumbs.configs import proxy_config
from thumbs.errors import DEFAULT_HANDLERS
from thumbs.frontend import frontend_component
from thumbs.resources import frontend_dist
from thumbs.settings import Settings
from thumbs.warm_consumer import consumer_component
from thumbs.warm_paths import warm_paths


def create_app(settings: Settings, *, warm_consumer: bool | None = None) -> Starlette:
    """Compose the proxy, the API and the frontend; each owns its routes and lifespan."""
    consume = settings.warm_consumer if warm_consumer is None else warm_consumer
    # The consumer is started below, after the library's database is connected.
    proxy = create_proxy(proxy_config(settings), warm_consumer=False)
    # How ingest and the backfill warm: one decision, in thumbs.warm_paths.
    paths = warm_paths(settings, proxy.warmer)
    components = [proxy.component, Component(routes=[], lifespan=paths.open)]
    api = create_api(settings, paths.backfill, durable_warm=paths.durable)
    proxy.health.require("database", api.ping)
    # JSON pages compress ~5x; thumbnails are JPEG already, so gzip stays off their hot path.
    api_mount = Mount("/api", routes=list(api.component.routes), middleware=[Middleware(GZipMiddleware)])
    api_component = Component(
        routes=[api_mount], lifespan=api.component.lifespan, exception_handlers=api.component.exception_handlers
    )
    consumers = [consumer_component(proxy.warmer, api.database, settings)] if consume else []
    picker = frontend_component(frontend_dist(), first_page=api.first_page)
    return compose([*components, api_component, *consumers, picker])


def compose(components: Sequence[Component]) -> Starlette:
    routes: list[BaseRoute] = [route for component in components for route in component.routes]
    handlers = dict(DEFAULT_HANDLERS)
    for component in components:
        handlers.update(component.exception_handlers)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for component in components:
                await stack.enter_async_context(component.lifespan())
            yield

    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
