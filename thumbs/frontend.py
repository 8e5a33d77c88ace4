"""Serves the built picker (frontend/dist): hashed assets immutable, index.html revalidated.

The page carries the listing's first page inline (``<script id="thumbs-first-page">``), so
the picker renders its first screen without waiting for a second round trip, and preload
hints for the first row's thumbnails, so the browser fetches them while the script loads.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
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
FIRST_PAGE_SIZE = 50  # the picker's default page size
PRELOADED_THUMBNAILS = 12  # about the first screen of a laptop window
CELL_HINT_PX = 160  # the picker's cells are 150-300 px wide; 160 on a typical laptop window

# index.html's hint to fetch the first listing page, for when the page is served without it.
LISTING_PRELOAD = re.compile(r'\n?[ \t]*<link rel="preload" href="/api/library/images[^"]*" as="fetch"[^>]*>')

FirstPage = Callable[[int], Awaitable[dict[str, Any] | None]]


class HashedAssets(StaticFiles):
    """Vite puts a content hash in every asset name, so they can be cached forever."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = IMMUTABLE
        return response


def inline_first_page(page_html: str, content: dict[str, Any]) -> str:
    """The page with the first listing page inline and its first thumbnails preloaded."""
    # In a <script> element only "</" can end it early: escape every "<" in the JSON.
    data = orjson.dumps(content).decode().replace("<", "\\u003c")
    head = [f'<script id="thumbs-first-page" type="application/json">{data}</script>']
    for image in content.get("images", [])[:PRELOADED_THUMBNAILS]:
        cell, cell_2x = image.get("cell_thumbnail_url"), image.get("cell_thumbnail_url_2x")
        if isinstance(cell, str) and isinstance(cell_2x, str):
            # The same candidates and about the same size as the picker's <img srcset>, so the
            # browser picks the same URL for the hint as for the tile and downloads it once.
            candidates = html.escape(f"{cell} 200w, {cell_2x} 400w")
            head.append(f'<link rel="preload" as="image" fetchpriority="high" href="{html.escape(cell)}" '
                        f'imagesrcset="{candidates}" imagesizes="{CELL_HINT_PX}px" />')
    block = "\n    ".join(head)
    without_fetch = LISTING_PRELOAD.sub("", page_html)  # the page carries that data now
    return without_fetch.replace("</head>", f"    {block}\n  </head>", 1)


def frontend_component(dist: Path, first_page: FirstPage | None = None) -> Component:
    index = dist / "index.html"

    async def page(request: Request) -> Response:
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503)
        headers = {"cache-control": "no-cache"}  # the page names the current hashed assets
        # `?inline=0` serves the page as built (the picker then asks the API for its first page).
        if first_page is None or request.query_params.get("inline") == "0":
            return FileResponse(index, headers=headers)
        content = await first_page(FIRST_PAGE_SIZE)
        if content is None:  # the database is not answering: the picker fetches and reports it itself
            return FileResponse(index, headers=headers)
        return HTMLResponse(inline_first_page(index.read_text(), content), headers=headers)

    routes: list[BaseRoute] = [Route("/", page, methods=["GET", "HEAD"])]
    if (dist / "assets").is_dir():
        assets = GZipMiddleware(HashedAssets(directory=dist / "assets"))
        routes.append(Mount("/assets", app=assets, name="assets"))
    return Component(routes=routes)
