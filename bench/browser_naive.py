"""The naive grid's server: bench/naive_grid.html at `/`, `/api/...` forwarded to the demo.

The frontend is finished and not ours to change, so the comparison page is served by the
bench on its own loopback port; the page is same-origin with its API, like the demo page.
The full originals it shows come straight from the demo's stand-in origin (as in the Playground).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from bench.services import free_port

PAGE = Path(__file__).with_name("naive_grid.html")
FORWARDED_HEADERS = ("content-type", "cache-control")


def create_naive_app(api_base: str) -> Starlette:
    client = httpx.AsyncClient(base_url=api_base, timeout=30)

    async def page(_: Request) -> Response:
        return FileResponse(PAGE, headers={"cache-control": "no-store"})

    async def api(request: Request) -> Response:
        upstream = await client.get(request.url.path, params=request.query_params)
        headers = {k: v for k, v in upstream.headers.items() if k in FORWARDED_HEADERS}
        return Response(upstream.content, status_code=upstream.status_code, headers=headers)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    # gzip like the product's /api, so the page-list bytes compare fairly.
    return Starlette(routes=[Route("/", page), Route("/api/{path:path}", api)], lifespan=lifespan,
                     middleware=[Middleware(GZipMiddleware)])


@contextlib.contextmanager
def serving_naive_grid(api_base: str) -> Iterator[str]:
    """Serve the naive grid in a thread on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(create_naive_app(api_base), host="127.0.0.1", port=port, log_level="warning",
                            access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="naive-grid", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the naive grid server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
