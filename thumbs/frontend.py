"""Serves the built picker (frontend/dist): hashed assets immutable, index.html revalidated."""

from __future__ import annotations

from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from httpkit.component import Component

IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>thumbs</title>
<p>The picker is not built yet. Run <code>make build</code> (or <code>make demo</code>).</p>"""


class HashedAssets(StaticFiles):
    """Vite puts a content hash in every asset name, so they can be cached forever."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = IMMUTABLE
        return response


def frontend_component(dist: Path) -> Component:
    index = dist / "index.html"

    async def page(_: Request) -> Response:
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503)
        # The page names the current hashed assets: always revalidate it.
        return FileResponse(index, headers={"cache-control": "no-cache"})

    routes: list[BaseRoute] = [Route("/", page, methods=["GET", "HEAD"])]
    if (dist / "assets").is_dir():
        assets = GZipMiddleware(HashedAssets(directory=dist / "assets"))
        routes.append(Mount("/assets", app=assets, name="assets"))
    return Component(routes=routes)
