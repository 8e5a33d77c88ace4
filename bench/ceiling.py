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


def create_app() -> Starlette:
    body = Path(os.environ["BENCH_CEILING_FILE"]).read_bytes()
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": '"ceiling"',
               "X-Content-Type-Options": "nosniff"}

    async def thumbnail(request: Request) -> Response:
        return Response(body, media_type="image/jpeg", headers=headers)

    async def health(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/t/{path:path}", thumbnail), Route("/healthz", health)])
