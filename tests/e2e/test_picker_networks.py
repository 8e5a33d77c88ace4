"""The picker on bad networks and odd hosts, in headless Chromium against the real server.

Short pages mid-list, a Slow-3G-like link (CDP), listing requests that hang or answer garbage, a
hidden tab, and a 6x throttled CPU. Each test prints the figures it measured (run with -s to see).
THUMBS_TEST_E2E_FRONTEND_DIST serves another build of the picker (its index.html and assets) through
route interception, to measure a build from before a change against the same server.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Browser, Request, Route, expect

from tests.e2e.test_picker import API_PATH, TRACKER, VIEWPORT, Session, first_api_page, tile_url

pytestmark = pytest.mark.e2e

THUMB_PATH = re.compile(r"^/t/")
# Chromium's own line for any failed HTTP response (a 503 the test serves on purpose), not the app's.
BROWSER_NETWORK_LINE = re.compile(r"^Failed to load resource")


def serve_other_build(page: Any, base_url: str) -> None:
    dist = os.environ.get("THUMBS_TEST_E2E_FRONTEND_DIST")
    if not dist:
        return
    root = Path(dist)

    def handle(route: Route) -> None:
        path = urlparse(route.request.url).path
        file = root / "index.html" if path in ("", "/") else root / path.lstrip("/")
        if not file.is_file():
            route.continue_()
            return
        route.fulfill(status=200, body=file.read_bytes(), content_type=mimetypes.guess_type(str(file))[0] or "text/html")

    page.route(f"{base_url}/", handle)
    page.route(f"{base_url}/?*", handle)
    page.route(f"{base_url}/assets/**", handle)


class NetSession(Session):
    """A Session that also counts requests in flight (listing and thumbnails) and page errors."""

    def __init__(self, page: Any, base_url: str) -> None:
        super().__init__(page, base_url)
        self.inflight: dict[str, set[Request]] = {"listing": set(), "thumb": set()}
        self.peak = {"listing": 0, "thumb": 0}
        self.aborted = {"listing": 0, "thumb": 0}
        self.errors: list[str] = []
        page.on("request", self._start)
        page.on("requestfinished", lambda r: self._end(r, False))
        page.on("requestfailed", lambda r: self._end(r, True))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: self.errors.append(f"console.{m.type}: {m.text}")
            if m.type == "error" and not BROWSER_NETWORK_LINE.match(m.text)
            else None,
        )

    @staticmethod
    def kind(request: Request) -> str | None:
        path = urlparse(request.url).path
        if path == API_PATH and "newer_than" not in request.url:
            return "listing"
        if THUMB_PATH.match(path):
            return "thumb"
        return None

    def _start(self, request: Request) -> None:
        kind = self.kind(request)
        if kind:
            self.inflight[kind].add(request)
            self.peak[kind] = max(self.peak[kind], len(self.inflight[kind]))

    def _end(self, request: Request, failed: bool) -> None:
        kind = self.kind(request)
        if kind and request in self.inflight[kind]:
            self.inflight[kind].discard(request)
            if failed:
                self.aborted[kind] += 1

    def count(self, kind: str, since: int = 0) -> int:
        return sum(1 for r in self.requests[since:] if self.kind(r) == kind)

    def offset_requests(self, offset: int) -> int:
        return sum(
            1
            for r in self.requests
            if self.kind(r) == "listing" and parse_qs(urlparse(r.url).query).get("offset") == [str(offset)]
        )

    def scroll_to_index(self, index: int) -> None:
        state = self.grid()
        self.scroll_to(state["cellHeight"] * (index // state["columns"]))

    def wrong_tiles(self, images: dict[int, dict[str, Any]]) -> list[int]:
        """Cells whose <img> is not the image the API has at that index."""
        shown = self.page.evaluate(
            "() => [...document.querySelectorAll('[role=gridcell][data-index] img')]"
            ".map((i) => [Number(i.closest('[data-index]').dataset.index), i.getAttribute('src')])"
        )
        return [index for index, src in shown if index in images and src != tile_url(images[index])]


@pytest.fixture
def net(browser: Browser, base_url: str) -> Iterator[NetSession]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.add_init_script(TRACKER)
    serve_other_build(page, base_url)
    try:
        yield NetSession(page, base_url)
    finally:
        context.close()


def test_a_short_page_mid_list_is_asked_again_and_never_ends_the_list(net: NetSession) -> None:
    # Page 2 (offset 100) answers 20 of its 50 rows twice while total says 1,100: before, the list
    # ended at image 120 for the session (rows 120+ were gone from the grid, never asked again).
    short_answers = {"left": 2}

    def api(route: Route) -> None:
        query = parse_qs(urlparse(route.request.url).query)
        if query.get("offset") == ["100"] and short_answers["left"] > 0:
            short_answers["left"] -= 1
            response = route.fetch()
            body = response.json()
            body["images"] = body["images"][:20]
            route.fulfill(response=response, body=json.dumps(body))
        else:
            route.continue_()

    net.page.route(f"**{API_PATH}*", api)
    net.open()
    net.wait_for_thumbnails(12)
    total = net.total()
    net.scroll_to_index(110)
    expect(net.cell(130)).to_be_attached(timeout=10_000)
    expect(net.page.locator('[role=gridcell][data-index="130"] img')).to_be_attached(timeout=15_000)
    net.page.wait_for_timeout(500)
    images = net.images_by_index()
    state = net.grid()
    rows = -(-total // state["columns"])
    print(f"offset=100 asked {net.offset_requests(100)}x, grid {state['scrollHeight']} px for {rows} rows")
    assert net.offset_requests(100) == 3  # two short answers, then the whole page
    assert abs(state["scrollHeight"] - rows * state["cellHeight"]) < state["cellHeight"]  # the list kept its length
    assert net.wrong_tiles(images) == []
    assert net.errors == []
