"""A programmable origin on loopback that counts what it serves.

Tests register bodies (or behaviours) by path and assert on ``hits`` afterwards, so
"one origin fetch" and "no connection reached the target" are observed, not assumed.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between 64 KiB chunks (slow-loris origins)
    hold: threading.Event | None = None  # the response waits until the test sets it (no timing race)


class Origin:
    """ASGI app: ``origin.add('/a.jpg', jpeg_bytes)``; ``origin.hits['/a.jpg']``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route | Handler] = {}
        self.hits: Counter[str] = Counter()
        self.base_url = ""  # set by the fixture once the server listens

    def add(self, path: str, body: bytes = b"", **kwargs: object) -> str:
        self.routes[path] = Route(body=body, **kwargs)  # type: ignore[arg-type]
        return self.base_url + path

    def add_handler(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.base_url + path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        request = Request(scope, receive)
        path = request.url.path
        self.hits[path] += 1
        route = self.routes.get(path)
        if route is None:
            response: Response = Response(b"not found", status_code=404)
        elif isinstance(route, Route):
            response = await self._respond(route)
        else:
            response = await route(request)
        await response(scope, receive, send)

    async def _respond(self, route: Route) -> Response:
        if route.delay:
            await asyncio.sleep(route.delay)
        if route.hold is not None:
            await asyncio.to_thread(route.hold.wait)  # a thread waits: the origin's loop serves other routes
        headers = {"content-type": route.content_type, **route.headers}
        if not route.chunk_delay:
            return Response(route.body, status_code=route.status, headers=headers)

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, max(len(route.body), 1), 65536):
                yield route.body[start : start + 65536]
                await asyncio.sleep(route.chunk_delay)

        return StreamingResponse(chunks(), status_code=route.status, headers=headers)
