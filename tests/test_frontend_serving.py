"""How the picker's page and assets leave the server: the head before the listing query, assets gzipped once."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.support.wait import wait_until
from thumbs.frontend import frontend_component

INDEX = """<!doctype html>
<html lang="en">
  <head>
    <title>picker</title>
    <link rel="preload" href="/api/library/images?limit=50&amp;offset=0" as="fetch" crossorigin="anonymous" />
    <script type="module" crossorigin src="/assets/index-abc.js"></script>
    <link rel="stylesheet" crossorigin href="/assets/index-abc.css">
  </head>
  <body><div id="root"></div></body>
</html>
"""
SCRIPT = b"export const picker = 1;\n" * 4000
PAGE = {"images": [{"id": 1, "url": "http://o/1.png", "cell_thumbnail_url": "/t/a/cell/1.jpg",
                    "cell_thumbnail_url_2x": "/t/b/cell2x/1.jpg"}], "total": 1, "limit": 50, "offset": 0}


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets" / "index-abc.js").write_bytes(SCRIPT)
    return tmp_path


async def call(app: Starlette, path: str, headers: list[tuple[bytes, bytes]] | None = None,
               on_body: Any = None) -> list[MutableMapping[str, Any]]:
    """Run one GET through the ASGI app, recording every message it sends (and calling on_body on each body)."""
    sent: list[MutableMapping[str, Any]] = []
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers or [], "scheme": "http", "server": ("test", 80), "client": ("c", 1),
             "http_version": "1.1", "root_path": ""}

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested:  # the client stays connected until the response is done
            await asyncio.Event().wait()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and on_body:
            on_body(message)

    await app(scope, receive, send)
    return sent


async def test_the_head_leaves_before_the_listing_query_answers(dist: Path) -> None:
    answer = asyncio.Event()
    asked = asyncio.Event()
    seen_before_answer: list[bytes] = []

    async def first_page(limit: int) -> dict[str, Any] | None:
        asked.set()
        await answer.wait()
        return PAGE

    def on_body(message: dict[str, Any]) -> None:
        if not answer.is_set():
            seen_before_answer.append(message["body"])

    app = Starlette(routes=frontend_component(dist, first_page=first_page).routes)
    request = asyncio.create_task(call(app, "/", on_body=on_body))
    await asyncio.wait_for(asked.wait(), 5)
    # The query is still unanswered: the head must arrive anyway (a deadline, not a fixed sleep).
    await wait_until(lambda: "index-abc.css" in b"".join(seen_before_answer).decode(), 5,
                     what="the page head sent while the listing query waits")
    head = b"".join(seen_before_answer).decode()
    assert '<script type="module" crossorigin src="/assets/index-abc.js">' in head
    assert 'href="/assets/index-abc.css"' in head
    assert "thumbs-first-page" not in head and 'as="fetch"' not in head and "</head>" not in head
    answer.set()
    sent = await asyncio.wait_for(request, 5)
    status = sent[0]
    assert status["status"] == 200 and (b"cache-control", b"no-cache") in status["headers"]
    page = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    assert page.count("<head>") == 1 and page.count("</head>") == 1 and page.rstrip().endswith("</html>")
    assert page.index('<script id="thumbs-first-page"') < page.index("</head>")
    assert '[["/t/a/cell/1.jpg","/t/a/cell/1.jpg 200w, /t/b/cell2x/1.jpg 400w","160px"]]' in page  # the hints
    assert 'as="fetch"' not in page  # the data is inline


@pytest.mark.parametrize("failure", ["none", "raises"])
async def test_without_the_listing_the_page_still_works_and_hints_the_fetch(dist: Path, failure: str) -> None:
    async def first_page(limit: int) -> dict[str, Any] | None:
        if failure == "raises":
            raise RuntimeError("boom")
        return None

    app = Starlette(routes=frontend_component(dist, first_page=first_page).routes)
    sent = await call(app, "/")
    page = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    assert "thumbs-first-page" not in page
    # The picker's own fetch of page 0 still starts early, from the head.
    assert page.index('as="fetch"') < page.index("</head>") and page.rstrip().endswith("</html>")


async def test_assets_are_gzipped_once_and_served_from_the_copy(dist: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compressed: list[int] = []
    real = gzip.compress

    def counting(data: bytes, *args: Any, **kwargs: Any) -> bytes:
        compressed.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(gzip, "compress", counting)
    app = Starlette(routes=frontend_component(dist).routes)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        first = await http.get("/assets/index-abc.js", headers={"accept-encoding": "gzip"})
        second = await http.get("/assets/index-abc.js", headers={"accept-encoding": "gzip, br"})
        plain = await http.get("/assets/index-abc.js", headers={"accept-encoding": "identity"})
        missing = await http.get("/assets/nope.js", headers={"accept-encoding": "gzip"})
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["vary"] == "Accept-Encoding"
        assert response.headers["content-type"].startswith("text/javascript")
        assert response.content == SCRIPT  # httpx decodes it
        assert int(response.headers["content-length"]) < len(SCRIPT) / 10
    assert compressed == [len(SCRIPT)]  # once, not per request
    assert "content-encoding" not in plain.headers and plain.content == SCRIPT
    assert plain.headers["vary"] == "Accept-Encoding"  # (GZipMiddleware's), so a shared cache keeps the two apart
    # Different bytes, different strong validators (RFC 9110 8.8.3).
    assert first.headers["etag"] == second.headers["etag"] != plain.headers["etag"]
    assert missing.status_code == 404
