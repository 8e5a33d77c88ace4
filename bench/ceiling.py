"""The Python ceiling for a warm hit: a bare Starlette app returning the same bytes.

Same server (uvicorn, uvloop, httptools, no access log) and the same response headers as a
proxy hit, no lookup at all. Run by ``uvicorn --factory bench.ceiling:create_app`` with
BENCH_CEILING_FILE naming the bytes to return (bench-only; the product reads Settings).
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


def create_app() -> Starlette:
    body = Path(os.environ["BENCH_CEILING_FILE"]).read_bytes()
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": '"ceiling"',
               "X-Content-Type-Options": "nosniff"}

    async def thumbnail(request: Request) -> Response:
        return Response(body, media_type="image/jpeg", headers=headers)

    async def health(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/t/{path:path}", thumbnail), Route("/healthz", health)])


def create_raw_app() -> object:
    """The like-for-like ceiling for our hit path: a raw ASGI callable (no Starlette), headers pre-built,
    returning the same bytes; our memory-tier hit is also a raw ASGI endpoint."""
    body = Path(os.environ["BENCH_CEILING_FILE"]).read_bytes()
    start = {"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"image/jpeg"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"public, max-age=31536000, immutable"), (b"etag", b'"ceiling"'),
        (b"x-content-type-options", b"nosniff")]}
    answer = {"type": "http.response.body", "body": body}
    health_start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    health = {"type": "http.response.body", "body": b"ok"}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await send(health_start)
            await send(health)
            return
        await send(start)
        await send(answer)

    return app
