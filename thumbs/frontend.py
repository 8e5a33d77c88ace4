"""Serves the built picker (frontend/dist): hashed assets immutable, index.html revalidated.

The page carries the listing's first page inline (``<script id="thumbs-first-page">``), so
the picker renders its first screen without waiting for a second round trip, and preload
hints for the first row's thumbnails, so the browser fetches them while the script loads
(added by a few lines of inline script, only when the tab has no saved place further down: a
picker reopened at image 300 shows none of them).
The page is streamed: its head (the script and stylesheet tags) leaves before the listing query
runs, so the browser starts on the script, the first screen's longest step, without waiting for
the database. Text assets are gzipped once and kept, not compressed again for every request.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from httpkit.component import Component

log = logging.getLogger("thumbs")

IMMUTABLE = "public, max-age=31536000, immutable"
GZIPPED_SUFFIXES = (".js", ".css", ".svg", ".json", ".map")
NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>thumbs</title>
<p>The picker is not built yet. Run <code>make build</code> (or <code>make demo</code>).</p>"""
FIRST_PAGE_SIZE = 50  # the picker's default page size
PRELOADED_THUMBNAILS = 12  # about the first screen of a laptop window
CELL_HINT_PX = 160  # the picker's cells are 150-300 px wide; 160 on a typical laptop window

# Adds the thumbnail hints unless this tab saved a place further down the list: the picker's key
# (ImagePicker's scrollKey default, with the page's ?api= as its apiBase) and its reading of it.
PRELOAD_UNLESS_RESTORING = (
    "<script>(function (hints) {{"
    " try {{ var saved = Number(sessionStorage.getItem('thumbs-picker:scroll:' +"
    " (new URLSearchParams(location.search).get('api') || '')));"
    " if (Number.isInteger(saved) && saved > 0) return; }} catch (e) {{}}"
    " hints.forEach(function (hint) {{ var link = document.createElement('link');"
    " link.rel = 'preload'; link.as = 'image'; link.fetchPriority = 'high'; link.href = hint[0];"
    " link.imageSrcset = hint[1]; link.imageSizes = hint[2]; document.head.appendChild(link); }});"
    " }})({hints})</script>"
)

# index.html's hint to fetch the first listing page, for when the page is served without it.
LISTING_PRELOAD = re.compile(r'\n?[ \t]*<link rel="preload" href="/api/library/images[^"]*" as="fetch"[^>]*>')

FirstPage = Callable[[int], Awaitable[dict[str, Any] | None]]


class HashedAssets(StaticFiles):
    """Vite puts a content hash in every asset name, so they can be cached forever.

    Text assets go out gzipped from a copy compressed once per file version (the per-request
    GZipMiddleware spent ~12 ms of CPU on the 260 KB script, on the first screen's critical path).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gzipped: dict[str, tuple[tuple[int, int], bytes]] = {}

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code != 200:
            return response
        response.headers["cache-control"] = IMMUTABLE
        if isinstance(response, FileResponse) and accepts_gzip(scope) and path.endswith(GZIPPED_SUFFIXES):
            return await self._gzip_response(response)
        return response

    async def _gzip_response(self, response: FileResponse) -> Response:
        stat = response.stat_result
        version = (stat.st_mtime_ns, stat.st_size) if stat else (0, 0)
        cached = self._gzipped.get(str(response.path))
        if cached is None or cached[0] != version:
            # Once per file version, off the event loop (level 9 on 260 KB is tens of ms).
            cached = (version, await asyncio.to_thread(_gzip_file, Path(response.path)))
            self._gzipped[str(response.path)] = cached
        headers = {key: value for key, value in response.headers.items()
                   if key in ("content-type", "cache-control", "last-modified")}
        headers.update({"content-encoding": "gzip", "vary": "Accept-Encoding"})
        if etag := response.headers.get("etag"):
            # Other bytes, so another strong validator than the identity file's.
            headers["etag"] = etag[:-1] + '-gzip"' if etag.endswith('"') else etag + "-gzip"
        return Response(cached[1], headers=headers)


def _gzip_file(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)


def accepts_gzip(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"accept-encoding":
            return b"gzip" in value.lower()
    return False


def inline_block(content: dict[str, Any]) -> str:
    """The inline listing page and the preload hints for its first thumbnails, for the page's head."""
    # In a <script> element only "</" can end it early: escape every "<" in the JSON.
    data = orjson.dumps(content).decode().replace("<", "\\u003c")
    head = [f'<script id="thumbs-first-page" type="application/json">{data}</script>']
    hints = []
    for image in content.get("images", [])[:PRELOADED_THUMBNAILS]:
        cell, cell_2x = image.get("cell_thumbnail_url"), image.get("cell_thumbnail_url_2x")
        if isinstance(cell, str) and isinstance(cell_2x, str):
            # The same candidates and about the same size as the picker's <img srcset>, so the
            # browser picks the same URL for the hint as for the tile and downloads it once.
            hints.append([cell, f"{cell} 200w, {cell_2x} 400w", f"{CELL_HINT_PX}px"])
    if hints:
        head.append(PRELOAD_UNLESS_RESTORING.format(hints=orjson.dumps(hints).decode().replace("<", "\\u003c")))
    return "\n    ".join(head)


async def streamed_page(page_html: str, first_page: FirstPage) -> AsyncIterator[str]:
    """The page in two parts: the head as built (minus the listing fetch hint), then the listing.

    The browser reads the script and stylesheet tags from the first part and starts fetching them
    while the listing query runs; the rest of the head follows with the inline page and the
    thumbnail hints. If the listing cannot be had, the fetch hint goes out instead and the picker
    asks the API itself (and reports what it gets).
    """
    head, _, rest = page_html.partition("</head>")
    listing_hint = LISTING_PRELOAD.search(head)
    yield LISTING_PRELOAD.sub("", head)
    try:
        content = await first_page(FIRST_PAGE_SIZE)
    except Exception:  # the status line has gone: a page without the listing is still a working page
        log.exception("the picker page's first listing page failed")
        content = None
    block = inline_block(content) if content is not None else (listing_hint.group(0).strip() if listing_hint else "")
    yield f"    {block}\n  </head>{rest}" if block else f"</head>{rest}"


def frontend_component(dist: Path, first_page: FirstPage | None = None) -> Component:
    index = dist / "index.html"

    async def page(request: Request) -> Response:
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503)
        headers = {"cache-control": "no-cache"}  # the page names the current hashed assets
        # `?inline=0` serves the page as built (the picker then asks the API for its first page).
        if first_page is None or request.query_params.get("inline") == "0":
            return FileResponse(index, headers=headers)
        page_html = index.read_text()
        if "</head>" not in page_html:
            return FileResponse(index, headers=headers)
        return StreamingResponse(streamed_page(page_html, first_page), media_type="text/html", headers=headers)

    routes: list[BaseRoute] = [Route("/", page, methods=["GET", "HEAD"])]
    if (dist / "assets").is_dir():
        assets = GZipMiddleware(HashedAssets(directory=dist / "assets"))
        routes.append(Mount("/assets", app=assets, name="assets"))
    return Component(routes=routes)
