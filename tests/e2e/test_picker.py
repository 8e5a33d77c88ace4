"""End-to-end tests of the picker in headless Chromium against the real server (1,000+ images).

Each test asserts facts a user or the network would see: which URLs were requested, what the DOM
holds, where focus is, what the demo page reports as selected.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
from playwright.sync_api import Browser, Page, Request, Route, ViewportSize, expect

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshot.png"
API_PATH = "/api/library/images"
INLINE_PAGE = re.compile(r'<script id="thumbs-first-page" type="application/json">(.*?)</script>', re.S)
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
DOM_IMG_BUDGET = 100
PROXY_THUMB = re.compile(r"^/t/[^/]+/(thumb|cell|cell2x)/[^/]+$|^/__mock/thumb/")

# Installed before the app runs: the most <img> elements ever in the DOM, and the class each <img>
# had when it was inserted (to tell a skeleton flash from an instant re-show).
TRACKER = """
window.__maxImgs = 0;
window.__inserted = [];
new MutationObserver((records) => {
  window.__maxImgs = Math.max(window.__maxImgs, document.getElementsByTagName('img').length);
  for (const r of records) for (const n of r.addedNodes) {
    if (n.nodeType !== 1) continue;
    const imgs = n.tagName === 'IMG' ? [n] : n.querySelectorAll('img');
    for (const img of imgs) window.__inserted.push({src: img.getAttribute('src'), cls: img.className});
  }
}).observe(document, {childList: true, subtree: true});
"""

JS_GRID_STATE = """() => {
  const grid = document.querySelector('[role=grid]');
  const g = grid.getBoundingClientRect();
  const cells = [...grid.querySelectorAll('[role=gridcell][data-index]')];
  const visible = cells.filter((c) => {
    const r = c.getBoundingClientRect();
    return r.bottom > g.top + 0.5 && r.top < g.bottom - 0.5;
  });
  const idx = visible.map((c) => Number(c.dataset.index));
  const firstRow = grid.querySelector('[role=row]');
  const cell = cells[0] ? cells[0].getBoundingClientRect() : {height: 0};
  return {
    top: idx.length ? Math.min(...idx) : -1,
    bottom: idx.length ? Math.max(...idx) : -1,
    columns: firstRow ? firstRow.children.length : 0,
    cellHeight: cell.height,
    gridHeight: grid.clientHeight,
    scrollTop: grid.scrollTop,
    scrollHeight: grid.scrollHeight,
    imgs: document.getElementsByTagName('img').length,
  };
}"""

JS_FOCUS = """() => {
  const el = document.activeElement;
  const grid = document.querySelector('[role=grid]');
  if (!el || !el.dataset || el.dataset.index === undefined) return null;
  const r = el.getBoundingClientRect(), g = grid.getBoundingClientRect();
  const cs = getComputedStyle(el);
  return {index: Number(el.dataset.index), inView: r.top >= g.top - 1 && r.bottom <= g.bottom + 1,
          outline: cs.outlineStyle + ' ' + cs.outlineWidth, selected: el.getAttribute('aria-selected')};
}"""


class Session:
    """One page of the demo with everything it requested recorded."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.requests: list[Request] = []
        self.failed: list[tuple[str, str]] = []
        self.api_responses: list[Any] = []
        page.on("request", lambda r: self.requests.append(r))
        page.on("requestfailed", lambda r: self.failed.append((r.url, r.failure or "")))
        page.on("response", lambda r: self.api_responses.append(r) if API_PATH in r.url else None)
        self.documents: list[Any] = []  # the picker's page carries its first listing page inline
        page.on("response", lambda r: self.documents.append(r) if r.request.resource_type == "document" else None)

    def open(self, query: str = "", *, inline: bool = False) -> None:
        """The picker; ``inline``: as served, with its first listing page in the HTML. Without it
        (``?inline=0``) the first page comes from the API too, which tests can intercept."""
        if not inline:
            query = f"{query}&inline=0" if query else "?inline=0"
        self.page.goto(f"{self.base_url}/{query}")

    def wait_for_thumbnails(self, count: int = 12, timeout: float = 15_000) -> float:
        start = time.monotonic()
        self.page.wait_for_function(
            f"document.querySelectorAll('img.tp-loaded').length >= {count}", timeout=timeout
        )
        return time.monotonic() - start

    def grid(self) -> dict[str, Any]:
        return self.page.evaluate(JS_GRID_STATE)

    def wait_for_grid(self, done: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """Grid state once `done` holds (layout changes land over a few frames), or the last state seen."""
        deadline = time.monotonic() + timeout
        while True:
            self.settle()
            state = self.grid()
            if done(state) or time.monotonic() > deadline:
                return state
            self.page.wait_for_timeout(50)

    def focus(self) -> dict[str, Any] | None:
        return self.page.evaluate(JS_FOCUS)

    def api_offsets(self) -> list[int]:
        """Offsets of the listing pages loaded: the inline first page, then every API request."""
        offsets = [page["offset"] for page in self.inline_pages()]
        for request in self.requests:
            if urlparse(request.url).path == API_PATH:
                offsets.append(int(parse_qs(urlparse(request.url).query).get("offset", ["0"])[0]))
        return offsets

    def inline_pages(self) -> list[dict[str, Any]]:
        """Listing pages the server put into the HTML (thumbs/frontend.py), as the API would answer."""
        pages = []
        for response in self.documents:
            if response.status == 200 and (match := INLINE_PAGE.search(response.text())):
                pages.append(json.loads(match.group(1)))
        return pages

    def listing_bodies(self) -> list[dict[str, Any]]:
        return self.inline_pages() + [r.json() for r in self.api_responses if r.status == 200]

    def images_by_index(self) -> dict[int, dict[str, Any]]:
        """Every image the page received (inline or from the API), by its position in the library."""
        found: dict[int, dict[str, Any]] = {}
        for body in self.listing_bodies():
            for i, image in enumerate(body["images"]):
                found[body["offset"] + i] = image
        return found

    def total(self) -> int:
        return next(body["total"] for body in self.listing_bodies())

    def absolute(self, url: str) -> str:
        return urljoin(self.base_url + "/", url)

    def image_requests(self) -> list[str]:
        return [r.url for r in self.requests if r.resource_type == "image"]

    def scroll_to(self, top: float) -> None:
        self.page.evaluate("(t) => { document.querySelector('[role=grid]').scrollTop = t; }", top)
        self.settle()

    def settle(self) -> None:
        """Two animation frames: the scroll event, then React's commit."""
        self.page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def wait_focus(self, index: int, timeout: float = 5000) -> dict[str, Any]:
        """Focus lands on a cell once it has rendered, which can take a scroll event and a commit."""
        self.page.wait_for_function(
            f"() => document.activeElement && document.activeElement.dataset.index === '{index}'", timeout=timeout
        )
        self.settle()
        focus = self.focus()
        assert focus is not None
        return focus

    def cell(self, index: int):
        return self.page.locator(f'[role=gridcell][data-index="{index}"]')


@pytest.fixture
def session(browser: Browser, base_url: str) -> Iterator[Session]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.add_init_script(TRACKER)
    try:
        yield Session(page, base_url)
    finally:
        context.close()


def tile_url(image: dict[str, Any]) -> str:
    """The URL a tile's <img src> uses: the square cell, else the thumbnail (else the original)."""
    return image.get("cell_thumbnail_url") or image["thumbnail_url"] or image["url"]


def thumbnail_urls(image: dict[str, Any]) -> set[str]:
    """Every proxy URL a tile may load for this image (the cell at 1x/2x, the thumbnail)."""
    keys = ("thumbnail_url", "cell_thumbnail_url", "cell_thumbnail_url_2x")
    return {image[key] for key in keys if image.get(key)}


def first_api_page(session: Session, limit: int = 50) -> dict[str, Any]:
    response = session.page.request.get(f"{session.base_url}{API_PATH}?limit={limit}&offset=0")
    assert response.ok, response.status
    return response.json()


def test_first_screen_shows_proxy_thumbnails_only(session: Session) -> None:
    session.open(inline=True)
    elapsed = session.wait_for_thumbnails(12)
    print(f"first 12 thumbnails loaded {elapsed:.3f} s after navigation returned")
    images = session.images_by_index()
    assert session.total() >= 1000
    state = session.grid()
    assert state["columns"] >= 4, state  # 1280 px wide: several columns

    # Every image the page downloaded is a thumbnail from the API (full URLs only for images that
    # have no thumbnail at all: never as the fallback for a failing one).
    thumbs = {session.absolute(url) for i in images.values() for url in thumbnail_urls(i)}
    fallbacks = {session.absolute(i["url"]) for i in images.values() if not i["thumbnail_url"]}
    requested = session.image_requests()
    assert requested, "no image was requested"
    assert set(requested) <= thumbs | fallbacks, set(requested) - thumbs - fallbacks
    full_urls = {session.absolute(i["url"]) for i in images.values()} - fallbacks
    assert not set(requested) & full_urls
    # ...and those are the edge proxy's signed thumbnail URLs (or the dev mock's stand-ins).
    assert all(PROXY_THUMB.search(urlparse(url).path) for url in set(requested) - fallbacks), requested[:3]

    # The first screen is eager with high priority, async decoding, explicit size, the image's colour behind it.
    first = session.page.locator('[role=gridcell][data-index="0"] img')
    expect(first).to_have_attribute("loading", "eager")
    expect(first).to_have_attribute("fetchpriority", "high")
    expect(first).to_have_attribute("decoding", "async")
    assert int(first.get_attribute("width") or 0) > 0 and int(first.get_attribute("height") or 0) > 0
    colour = images[0]["color"]
    if colour:
        tile_bg = session.page.evaluate(
            "() => getComputedStyle(document.querySelector('[data-index=\"0\"] .tp-tile')).backgroundColor"
        )
        r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert tile_bg == f"rgb({r}, {g}, {b})"
    # Cells are labelled from metadata, inside ARIA grid roles.
    label = session.cell(0).get_attribute("aria-label") or ""
    assert f"Image {images[0]['id']}" in label
    expect(session.page.locator("[role=grid]")).to_have_attribute("aria-rowcount", re.compile(r"^\d+$"))

    # Further down, images load lazily.
    session.scroll_to(state["cellHeight"] * 20)
    lazy = session.page.locator("[role=gridcell] img[loading=lazy]")
    expect(lazy.first).to_be_attached()


def test_scrolling_to_the_end_loads_every_page_once_with_a_bounded_dom(session: Session) -> None:
    session.open()
    session.wait_for_thumbnails(12)
    total = session.total()
    limit = session.listing_bodies()[0]["limit"]
    state = session.grid()
    step = state["gridHeight"] * 0.9
    deadline = time.monotonic() + 60
    while state["scrollTop"] + state["gridHeight"] < state["scrollHeight"] - 1:
        assert time.monotonic() < deadline, "never reached the end"
        session.scroll_to(state["scrollTop"] + step)
        session.page.wait_for_timeout(30)
        state = session.grid()
        assert state["imgs"] <= DOM_IMG_BUDGET, state

    # The last image is on screen and every cell of the last screen gets filled.
    expect(session.cell(total - 1)).to_be_visible()
    expect(session.page.locator(".tp-skeleton")).to_have_count(0, timeout=10_000)
    session.page.wait_for_function(
        "document.querySelectorAll('[role=gridcell] img.tp-loaded, .tp-broken').length >= "
        "document.querySelectorAll('[role=gridcell][aria-selected]').length"
    )
    offsets = session.api_offsets()
    counts = Counter(offsets)
    assert [o for o, c in counts.items() if c > 1] == [], f"pages fetched twice: {counts}"
    assert set(offsets) == set(range(0, total, limit)), sorted(set(range(0, total, limit)) - set(offsets))
    assert len(offsets) == math.ceil(total / limit)
    max_imgs = session.page.evaluate("window.__maxImgs")
    print(f"{total} images, {len(offsets)} API pages, at most {max_imgs} <img> in the DOM")
    assert 0 < max_imgs <= DOM_IMG_BUDGET


def test_click_selects_and_returns_the_full_url(session: Session) -> None:
    session.open()
    session.wait_for_thumbnails(12)
    images = session.images_by_index()
    target = images[2]
    full = session.absolute(target["url"])
    assert full not in session.image_requests()  # nothing full-size before the choice

    session.cell(2).click()
    output = session.page.get_by_test_id("selected-url")
    expect(output).to_have_text(target["url"], timeout=1000)
    expect(session.cell(2)).to_have_attribute("aria-selected", "true")
    expect(session.cell(0)).to_have_attribute("aria-selected", "false")
    preview = session.page.get_by_test_id("preview")
    expect(preview).to_have_attribute("src", target["url"])
    session.page.wait_for_function(
        "() => { const p = document.querySelector('[data-testid=preview]');"
        " return p && p.complete && p.naturalWidth > 0; }"
    )

    # Single select: choosing another image replaces the choice.
    session.cell(3).click()
    expect(output).to_have_text(images[3]["url"])
    expect(session.cell(2)).to_have_attribute("aria-selected", "false")
    expect(preview).to_have_attribute("src", images[3]["url"])
    session.page.wait_for_function(
        "() => { const p = document.querySelector('[data-testid=preview]');"
        " return p && p.complete && p.naturalWidth > 0; }"
    )

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    session.page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_multiple_select_is_opt_in(session: Session) -> None:
    session.open("?multiple=1")
    session.wait_for_thumbnails(12)
    images = session.images_by_index()
    expect(session.page.locator("[role=grid]")).to_have_attribute("aria-multiselectable", "true")
    for i in (1, 4, 5):
        session.cell(i).click()
    session.cell(4).click()  # toggles off
    expect(session.page.get_by_test_id("selected-list").locator("li")).to_have_text(
        [images[1]["url"], images[5]["url"]]
    )
    expect(session.cell(4)).to_have_attribute("aria-selected", "false")
    expect(session.cell(5)).to_have_attribute("aria-selected", "true")


def test_keyboard_navigation(session: Session) -> None:
    session.open()
    session.wait_for_thumbnails(12)
    images = session.images_by_index()
    total = session.total()
    cols = session.grid()["columns"]
    keyboard = session.page.keyboard

    session.cell(0).focus()
    assert (session.focus() or {})["index"] == 0
    steps = [
        ("ArrowRight", 1),
        ("ArrowDown", 1 + cols),
        ("ArrowLeft", cols),
        ("ArrowUp", 0),
        ("End", cols - 1),
        ("Home", 0),
    ]
    for key, expected in steps:
        keyboard.press(key)
        focus = session.focus()
        assert focus and focus["index"] == expected, (key, focus)
    assert focus is not None  # steps is not empty: the loop asserted it on its last key
    assert focus["outline"].startswith("solid"), focus  # visible focus ring

    keyboard.press("PageDown")
    session.page.wait_for_function("document.activeElement && Number(document.activeElement.dataset.index) > 0")
    session.settle()
    focus = session.focus()
    assert focus and focus["index"] % cols == 0 and focus["index"] >= 2 * cols and focus["inView"], focus

    keyboard.press("Control+End")
    focus = session.wait_focus(total - 1)
    assert focus["inView"], focus

    keyboard.press("Control+Home")
    focus = session.wait_focus(0)
    assert focus["inView"], focus
    assert session.grid()["scrollTop"] == 0

    # Walking down past the screen scrolls the focused cell into view.
    for _ in range(8):
        keyboard.press("ArrowDown")
    focus = session.wait_focus(8 * cols)
    assert focus["inView"], focus
    assert session.grid()["scrollTop"] > 0

    keyboard.press("ArrowRight")
    keyboard.press(" ")
    images = session.images_by_index()  # the pages around row 8 may have arrived only now
    expect(session.page.get_by_test_id("selected-url")).to_have_text(images[8 * cols + 1]["url"])
    expect(session.cell(8 * cols + 1)).to_have_attribute("aria-selected", "true")
    keyboard.press("ArrowRight")
    keyboard.press("Enter")
    expect(session.page.get_by_test_id("selected-url")).to_have_text(images[8 * cols + 2]["url"])


def test_a_failing_thumbnail_says_so_and_never_downloads_the_original(session: Session) -> None:
    data = first_api_page(session)
    first, second = data["images"][0], data["images"][1]
    assert first["thumbnail_url"] and second["thumbnail_url"], "the demo's first images should have thumbnails"
    refused = {session.absolute(tile_url(first)): 404, session.absolute(tile_url(second)): 413}
    session.page.route(
        lambda url: url in refused, lambda route: route.fulfill(status=refused[route.request.url], body="no")
    )
    session.open()
    session.wait_for_thumbnails(6)

    for index in (0, 1):
        tile = session.cell(index)
        expect(tile.get_by_text("Preview unavailable")).to_be_visible(timeout=10_000)
        expect(tile).to_have_attribute("aria-label", re.compile(r"preview unavailable$"))
    expect(session.page.locator('[role=gridcell][data-index="2"] img')).to_have_attribute(
        "src", tile_url(data["images"][2])
    )
    requested = {request.url for request in session.requests}
    assert session.absolute(first["url"]) not in requested
    assert session.absolute(second["url"]) not in requested


def test_a_busy_proxy_is_retried_and_the_original_never_fetched(session: Session) -> None:
    data = first_api_page(session)
    target = data["images"][3]
    thumb = session.absolute(tile_url(target))
    failures = {"left": 2}

    def busy_twice(route: Any) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            route.fulfill(status=503, headers={"retry-after": "1"}, body='{"error": "overloaded"}')
        else:
            route.continue_()

    session.page.route(lambda url: url == thumb, busy_twice)
    session.open()
    img = session.page.locator('[role=gridcell][data-index="3"] img')
    expect(img).to_have_class(re.compile(r"\btp-loaded\b"), timeout=10_000)
    expect(img).to_have_attribute("src", tile_url(target))
    assert failures["left"] == 0
    # The multi-megabyte original was never requested.
    assert session.absolute(target["url"]) not in {request.url for request in session.requests}


def test_api_failure_shows_an_error_with_retry(session: Session) -> None:
    attempts: list[str] = []

    def fail(route: Route) -> None:
        attempts.append(route.request.url)
        route.fulfill(
            status=503,
            content_type="application/json",
            body=json.dumps({"error": "unavailable", "detail": "library database is down"}),
        )

    session.page.route(f"**{API_PATH}*", fail)
    session.open()
    alert = session.page.get_by_role("alert")
    expect(alert).to_contain_text("The library isn't responding", timeout=15_000)
    expect(alert).to_contain_text("library database is down")
    assert 2 <= len(attempts) <= 4, attempts  # retried with backoff, then gave up (no endless skeleton)
    expect(session.page.locator("img")).to_have_count(0)

    session.page.unroute(f"**{API_PATH}*")
    alert.get_by_role("button", name="Try again").click()
    session.wait_for_thumbnails(12)
    expect(session.page.get_by_role("alert")).to_have_count(0)


def test_a_failing_page_is_shown_as_failed_and_can_be_retried(session: Session) -> None:
    attempts: list[str] = []

    def fail_second_page(route: Route) -> None:
        if parse_qs(urlparse(route.request.url).query).get("offset") == ["50"]:
            attempts.append(route.request.url)
            route.fulfill(status=500, content_type="application/json", body='{"error": "boom"}')
        else:
            route.continue_()

    session.page.route(f"**{API_PATH}*", fail_second_page)
    session.open()
    session.wait_for_thumbnails(12)
    cols = session.grid()["columns"]
    session.scroll_to(session.grid()["cellHeight"] * (55 // cols))
    expect(session.cell(55)).to_contain_text("Failed to load", timeout=15_000)
    bar = session.page.get_by_role("alert")
    expect(bar).to_contain_text("could not be loaded")
    assert 2 <= len(attempts) <= 4, attempts
    n = len(attempts)
    session.page.wait_for_timeout(1500)
    assert len(attempts) == n  # failed means stop asking until the user retries

    session.page.unroute(f"**{API_PATH}*")
    bar.get_by_role("button", name="Retry").click()
    expect(session.page.locator('[role=gridcell][data-index="55"] img')).to_be_attached()
    expect(session.page.get_by_role("alert")).to_have_count(0)


def test_empty_library_shows_a_message(session: Session) -> None:
    empty = {"images": [], "total": 0, "limit": 50, "offset": 0, "next_cursor": None}
    body = json.dumps(empty)
    session.page.route(
        f"**{API_PATH}*", lambda route: route.fulfill(status=200, content_type="application/json", body=body)
    )
    session.open()
    status = session.page.get_by_role("status").filter(has_text="Your library is empty")
    expect(status).to_be_visible()
    expect(status.get_by_role("button", name="Refresh")).to_be_visible()
    expect(session.page.locator("[role=gridcell]")).to_have_count(0)


def test_offscreen_downloads_are_aborted(session: Session) -> None:
    # Phase 1: thumbnails that never answer, then scrolled away: their requests must be cancelled.
    held: list[Route] = []
    def hold_images(route: Route) -> None:
        if route.request.resource_type == "image":
            held.append(route)  # never answered
        else:
            route.continue_()

    session.page.route(re.compile(r".*"), hold_images)
    session.open()
    session.page.wait_for_function("document.querySelectorAll('[role=gridcell] img').length >= 12")
    session.page.wait_for_timeout(300)
    pending = {r.request.url for r in held}
    assert len(pending) >= 6, len(pending)
    session.scroll_to(session.grid()["cellHeight"] * 60)
    session.page.wait_for_timeout(500)
    aborted = {url for url, why in session.failed if url in pending and "ABORTED" in why.upper()}
    assert len(aborted) >= 6, (len(pending), session.failed[:5])
    assert session.page.evaluate(
        "(urls) => [...document.images].filter((i) => urls.includes(i.src)).length", sorted(pending)
    ) == 0
    session.page.unroute(re.compile(r".*"))


def test_scrolled_back_thumbnails_appear_without_a_skeleton(session: Session) -> None:
    session.open()
    session.wait_for_thumbnails(12)
    session.page.wait_for_function(
        "() => [...document.querySelectorAll('[role=gridcell] img')].every((i) => i.classList.contains('tp-loaded'))"
    )
    top_srcs = session.page.evaluate(
        "() => [...document.querySelectorAll('[role=gridcell] img')].map((i) => i.getAttribute('src'))"
    )
    height = session.grid()["cellHeight"]
    session.scroll_to(height * 40)
    session.page.wait_for_timeout(200)
    session.page.evaluate("() => { window.__inserted = []; }")
    session.scroll_to(0)
    inserted = session.page.evaluate("window.__inserted")
    back = [i for i in inserted if i["src"] in top_srcs]
    assert len(back) >= 12, inserted[:5]
    assert all("tp-loaded" in i["cls"] for i in back), [i for i in back if "tp-loaded" not in i["cls"]][:3]


def test_scroll_position_survives_closing_and_reopening(session: Session) -> None:
    session.open()
    session.wait_for_thumbnails(12)
    height = session.grid()["cellHeight"]
    session.scroll_to(height * 37 + 5)
    session.page.wait_for_timeout(300)
    before = session.grid()
    assert before["top"] > 100

    session.page.get_by_role("button", name="Close library").click()
    expect(session.page.locator("[role=grid]")).to_have_count(0)
    session.page.get_by_role("button", name="Open library").click()
    session.page.wait_for_function(
        f"() => {{ const g = document.querySelector('[role=grid]'); return g && g.scrollTop > {height * 30}; }}"
    )
    session.settle()
    after = session.grid()
    assert after["top"] == before["top"], (before, after)


def test_reloading_at_a_saved_place_downloads_no_thumbnail_of_the_top_of_the_list(session: Session) -> None:
    """The page's first-screen hints are for a picker that opens at the top; one reopened further down skips them."""
    session.open(inline=True)
    session.wait_for_thumbnails(12)
    height = session.grid()["cellHeight"]
    session.scroll_to(height * 37 + 5)
    session.page.wait_for_timeout(300)
    top = {session.absolute(url) for image in first_api_page(session, 12)["images"] for url in thumbnail_urls(image)}
    session.requests.clear()
    session.page.reload()
    session.page.wait_for_function(
        f"() => {{ const g = document.querySelector('[role=grid]'); return g && g.scrollTop > {height * 30}; }}"
    )
    session.wait_for_thumbnails(12)
    assert not top & set(session.image_requests())
    # A fresh tab (no saved place) still gets the hints: the first screen's thumbnails load at once.
    session.page.evaluate("() => sessionStorage.clear()")
    session.requests.clear()
    session.page.reload()
    session.wait_for_thumbnails(12)
    assert len(top & set(session.image_requests())) >= 12


def test_resizing_keeps_the_top_image_in_view(session: Session) -> None:
    session.open()
    session.wait_for_thumbnails(12)
    state = session.grid()
    session.scroll_to(state["cellHeight"] * 25 + 7)
    session.page.wait_for_timeout(200)
    before = session.grid()

    session.page.set_viewport_size({"width": 700, "height": 800})
    after = session.wait_for_grid(lambda g: g["columns"] < before["columns"] and g["top"] <= before["top"])
    assert after["columns"] >= 2
    assert after["top"] <= before["top"] < after["top"] + after["columns"], (before, after)

    session.page.set_viewport_size({"width": 375, "height": 700})  # a phone
    # The item the user scrolled to is the anchor, not whatever was top-left in between.
    phone = session.wait_for_grid(lambda g: g["columns"] == 2 and g["top"] <= before["top"])
    assert phone["top"] <= before["top"] < phone["top"] + 2, (before, after, phone)
    overflow = session.page.evaluate(
        "() => { const g = document.querySelector('[role=grid]'); return g.scrollWidth - g.clientWidth; }"
    )
    assert overflow <= 0


def test_a_drag_resize_round_trip_keeps_the_place(session: Session) -> None:
    session.open()
    session.wait_for_thumbnails(12)
    session.scroll_to(session.grid()["cellHeight"] * 25 + 40)
    session.page.wait_for_timeout(200)
    before = session.grid()
    anchor = before["top"]

    # Dragging the window edge: many small width steps narrower, then back, a frame or two apart.
    widths = [*range(1280, 560, -24), *range(560, 1281, 24)]
    for width in widths:
        session.page.set_viewport_size({"width": width, "height": 800})
        session.settle()
        state = session.grid()
        assert state["top"] <= anchor <= state["bottom"], (width, anchor, state)
    print(f"drag-resize: {len(widths)} width steps 1280->560->1280 px, anchor {anchor} in view at every step")
    after = session.wait_for_grid(lambda g: g["columns"] == before["columns"] and g["top"] == anchor)
    assert after["top"] == anchor, (before, after)
    assert abs(after["scrollTop"] - before["scrollTop"]) <= 1, (before, after)


def test_offline_then_online_recovers_by_itself(session: Session) -> None:
    session.open()
    session.wait_for_thumbnails(12)
    images = session.images_by_index()
    cols = session.grid()["columns"]
    context = session.page.context

    context.set_offline(True)
    session.scroll_to(session.grid()["cellHeight"] * (400 // cols))
    target = 400
    expect(session.cell(target)).to_contain_text("Offline", timeout=10_000)
    expect(session.page.get_by_role("alert")).to_contain_text("You're offline")

    context.set_offline(False)  # no click: the `online` event brings everything back
    expect(session.page.locator(f'[role=gridcell][data-index="{target}"] img.tp-loaded')).to_be_attached(
        timeout=15_000
    )
    expect(session.page.get_by_role("alert")).to_have_count(0)
    session.page.wait_for_function(
        "() => [...document.querySelectorAll('[role=gridcell] img')].every((i) => i.classList.contains('tp-loaded'))",
        timeout=15_000,
    )
    images = session.images_by_index()
    originals = {session.absolute(i["url"]) for i in images.values() if i["thumbnail_url"]}
    assert not originals & set(session.image_requests()), "an original was downloaded"


def test_a_listing_request_or_poll_that_never_answers_is_given_up_and_asked_again(session: Session) -> None:
    # A proxy that accepts the request and never answers: before, the first page stayed "Loading"
    # for good (neither `online`, the tab coming back, nor a Retry asked again), and one hung
    # newer_than poll blocked every later poll (new images were never announced).
    hung: list[Route] = []
    first = {"listing": True, "poll": True}
    data = first_api_page(session)
    newer = {**data, "images": data["images"][:2], "count": 2, "count_capped": False, "offset": 0}

    def api(route: Route) -> None:
        query = parse_qs(urlparse(route.request.url).query)
        kind = "poll" if "newer_than" in query else "listing"
        if first[kind]:
            first[kind] = False
            hung.append(route)  # never answered
        elif kind == "poll":
            route.fulfill(status=200, content_type="application/json", body=json.dumps(newer))
        else:
            route.continue_()

    session.page.route(f"**{API_PATH}*", api)
    try:
        session.open()
        session.page.wait_for_timeout(3000)
        assert len(hung) == 1 and session.page.locator("img.tp-loaded").count() == 0
        session.wait_for_thumbnails(12, timeout=25_000)  # the 15 s deadline, one backoff, then page 0
        session.page.evaluate("() => window.dispatchEvent(new Event('focus'))")  # the poll that hangs
        session.page.wait_for_timeout(1000)
        assert len(hung) == 2, "the first poll should be pending"
        session.page.wait_for_timeout(15_500)
        session.page.evaluate("() => window.dispatchEvent(new Event('focus'))")
        expect(session.page.get_by_role("status").filter(has_text="2 new images")).to_be_attached(timeout=5_000)
    finally:
        for route in hung:
            try:
                route.abort()
            except Exception:  # the page may already have given up on it
                pass


def test_a_thumbnail_outage_recovers_without_originals(session: Session) -> None:
    data = first_api_page(session)
    thumbs = {session.absolute(url) for i in data["images"] for url in thumbnail_urls(i)}
    outage = {"refused": 0}

    def busy(route: Route) -> None:
        outage["refused"] += 1
        route.fulfill(status=503, headers={"retry-after": "5"}, body='{"error": "overloaded"}')

    session.page.route(lambda url: url in thumbs, busy)
    session.open()
    expect(session.page.get_by_text("Preview unavailable").first).to_be_visible(timeout=10_000)
    session.page.unroute(lambda url: url in thumbs)
    session.page.unroute_all()
    # The user comes back to the tab: everything failed tries again at once.
    session.page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    session.wait_for_thumbnails(12, timeout=5_000)
    expect(session.page.get_by_text("Preview unavailable")).to_have_count(0, timeout=5_000)
    assert outage["refused"] >= 12
    originals = {session.absolute(i["url"]) for i in data["images"] if i["thumbnail_url"]}
    requested = set(session.image_requests())
    assert not originals & requested, "an original was downloaded"
    image_bytes = session.page.evaluate(
        "() => performance.getEntriesByType('resource').filter((e) => e.initiatorType === 'img')"
        ".reduce((n, e) => n + e.encodedBodySize, 0)"
    )
    # What the old fallback would have cost: the originals of the tiles whose thumbnail failed.
    shown = [i["url"] for i in data["images"] if {session.absolute(url) for url in thumbnail_urls(i)} & requested]
    fallback_bytes = sum(len(session.page.request.get(session.absolute(url)).body()) for url in shown)
    print(
        f"thumbnail outage: {outage['refused']} refused thumbnail requests, 0 originals, {len(requested)} image URLs, "
        f"{image_bytes / 1e6:.2f} MB of image bodies in all (their originals: {fallback_bytes / 1e6:.1f} MB)"
    )


def test_retry_button_keys_and_parked_focus(session: Session) -> None:
    def fail_second_page(route: Route) -> None:
        if parse_qs(urlparse(route.request.url).query).get("offset") == ["50"]:
            route.fulfill(status=500, content_type="application/json", body='{"error": "boom"}')
        else:
            route.continue_()

    session.page.route(f"**{API_PATH}*", fail_second_page)
    session.open()
    session.wait_for_thumbnails(12)
    cols = session.grid()["columns"]
    session.scroll_to(session.grid()["cellHeight"] * (55 // cols))
    expect(session.cell(55)).to_contain_text("Failed to load", timeout=15_000)
    button = session.page.get_by_role("alert").get_by_role("button", name="Retry")
    button.focus()
    session.page.keyboard.press("ArrowDown")  # the button's, not the grid's
    assert session.page.evaluate("() => document.activeElement.textContent") == "Retry"
    session.page.unroute(f"**{API_PATH}*")
    session.page.keyboard.press("Enter")
    expect(session.page.locator('[role=gridcell][data-index="55"] img')).to_be_attached()
    expect(session.page.get_by_test_id("selected-url")).to_have_text("Nothing selected yet.")

    # The focused cell scrolls away: focus stays visible on the grid, and an arrow brings it back.
    session.scroll_to(0)
    session.cell(1).focus()
    session.scroll_to(session.grid()["cellHeight"] * 60)
    session.page.wait_for_function("() => document.activeElement.getAttribute('role') === 'grid'")
    outline = session.page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid", outline
    session.page.keyboard.press("ArrowDown")
    focus = session.wait_focus(1 + cols)
    assert focus["inView"], focus


AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"


def serious_violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_no_serious_accessibility_violations(session: Session) -> None:
    if not AXE.exists():
        pytest.skip("axe-core not installed (cd frontend && npm ci)")
    session.open()
    session.wait_for_thumbnails(12)
    assert serious_violations(session.page) == [], "loaded"
    session.cell(2).click()
    expect(session.cell(2)).to_have_attribute("aria-selected", "true")
    assert serious_violations(session.page) == [], "selected"
    session.open("?theme=dark")
    session.wait_for_thumbnails(12)
    session.cell(1).click()
    assert serious_violations(session.page) == [], "dark theme"

    def fail_second_page(route: Route) -> None:
        if parse_qs(urlparse(route.request.url).query).get("offset") == ["50"]:
            route.fulfill(status=400, content_type="application/json", body='{"error": "bad"}')
        else:
            route.continue_()

    session.page.route(f"**{API_PATH}*", fail_second_page)
    session.open()
    session.wait_for_thumbnails(12)
    session.scroll_to(session.grid()["cellHeight"] * (55 // session.grid()["columns"]))
    expect(session.page.get_by_role("alert")).to_contain_text("could not be loaded", timeout=15_000)
    assert serious_violations(session.page) == [], "failed page"
    session.page.unroute(f"**{API_PATH}*")

    session.page.route(
        f"**{API_PATH}*", lambda route: route.fulfill(status=400, content_type="application/json", body="{}")
    )
    session.open()
    expect(session.page.get_by_role("alert")).to_contain_text("isn't responding", timeout=15_000)
    assert serious_violations(session.page) == [], "first load failed"
    session.page.unroute(f"**{API_PATH}*")

    empty = json.dumps({"images": [], "total": 0, "limit": 50, "offset": 0, "next_cursor": None})
    session.page.route(
        f"**{API_PATH}*", lambda route: route.fulfill(status=200, content_type="application/json", body=empty)
    )
    session.open()
    expect(session.page.get_by_role("status").filter(has_text="Your library is empty")).to_be_visible()
    assert serious_violations(session.page) == [], "empty"


def ingest_copies(server: Any, count: int) -> list[int]:
    """Add `count` new images to the live server's library as the pipeline would (POST, ingest token)."""
    import shutil

    import httpx

    origin = server.data_dir / "origin" / "small"
    source = sorted(origin.iterdir())[0]
    token = (server.data_dir / "demo-keys" / "ingest-token").read_text().strip()
    ids = []
    for i in range(count):
        name = f"e2e-new-{time.time_ns()}-{i}{source.suffix}"
        shutil.copyfile(source, origin / name)
        response = httpx.post(
            f"{server.base_url}{API_PATH}",
            json={"url": f"{server.origin_url}/images/{name}", "pipeline_id": "e2e", "step": "generate"},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def cell_ids(session: Session, indices: range) -> dict[int, int]:
    labels = session.page.evaluate(
        "(idx) => Object.fromEntries(idx.map((i) => [i, document.querySelector(`[role=gridcell][data-index=\"${i}\"]`)"
        "?.getAttribute('aria-label') ?? '']))",
        list(indices),
    )
    return {int(i): int(m.group(1)) for i, label in labels.items() if (m := re.match(r"Image (\d+)", label))}


def test_images_added_while_open_never_show_twice_and_come_in_on_request(
    session: Session, request: pytest.FixtureRequest
) -> None:
    if "THUMBS_TEST_E2E_BASE_URL" in __import__("os").environ:
        pytest.skip("needs the live server's ingest token")
    server = request.getfixturevalue("live_server")
    if "head_cursor" not in first_api_page(session):
        pytest.skip("the library API has no head_cursor yet")
    session.open()
    session.wait_for_thumbnails(12)
    cols = session.grid()["columns"]
    new_ids = ingest_copies(server, 3)

    # Scroll over the page boundary at 100: positions 97..102 are six different images.
    height = session.grid()["cellHeight"]
    session.scroll_to(height * (96 // cols))
    session.page.wait_for_function(
        "() => [97,98,99,100,101,102].every((i) => /^Image /.test("
        "document.querySelector(`[role=gridcell][data-index=\"${i}\"]`)?.getAttribute('aria-label') ?? ''))"
    )
    around = cell_ids(session, range(97, 103))
    assert len(set(around.values())) == 6, around
    assert not set(around.values()) & set(new_ids)

    # Announced (the poll also runs every 20 s; focus asks at once), added on request, place kept.
    before = session.grid()
    top_id = cell_ids(session, range(before["top"], before["top"] + 1))[before["top"]]
    session.page.evaluate("() => window.dispatchEvent(new Event('focus'))")
    expect(session.page.get_by_role("status").filter(has_text="3 new images")).to_be_attached(timeout=10_000)
    session.page.get_by_role("button", name="Show 3 new images").click()
    session.page.wait_for_function(
        f"() => document.querySelector('[role=gridcell][data-index=\"{before['top'] + 3}\"]')"
        f"?.getAttribute('aria-label')?.startsWith('Image {top_id},')"
    )
    after = session.wait_for_grid(lambda g: g["top"] <= before["top"] + 3 <= g["bottom"])
    assert after["top"] <= before["top"] + 3 < after["top"] + cols, (before, after)
    session.scroll_to(0)
    session.page.wait_for_function(
        "() => /^Image /.test(document.querySelector('[data-index=\"2\"]')?.getAttribute('aria-label') ?? '')"
    )
    assert sorted(cell_ids(session, range(0, 3)).values()) == sorted(new_ids)


@pytest.mark.parametrize("size", [(320, 240), (200, 150)])
def test_a_short_viewport_keeps_a_row_of_tiles_in_view(browser: Browser, base_url: str, size: tuple[int, int]) -> None:
    # A phone held sideways or 400 % zoom: before, the header and the selection pane left the grid
    # 99 px (320x240) or 4 px (200x150) of height and the page did not scroll.
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        session = Session(context.new_page(), base_url)
        session.open()
        session.page.wait_for_selector("[role=gridcell] img.tp-loaded")
        grid = session.page.locator("[role=grid]")
        grid.scroll_into_view_if_needed()
        state = session.grid()
        assert state["gridHeight"] >= state["cellHeight"] > 0, state
        box = grid.bounding_box()
        assert box is not None and 0 <= box["y"] and box["y"] + state["cellHeight"] <= height + 1, (box, state)
        session.cell(0).click()
        expect(session.page.get_by_test_id("selected-url")).to_contain_text("http")
    finally:
        context.close()


def test_a_2x_screen_gets_the_2x_cells_and_a_light_first_screen(browser: Browser, base_url: str) -> None:
    """srcset: a 2x screen loads the 400 px cell (>= 0.8 source px per device px where the source
    has them), a 1x one the 200 px cell; the first screen stays under 600 KB of images, and with
    the first page inline the API is not asked for it."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=2)
    try:
        page = context.new_page()
        session = Session(page, base_url)
        session.open(inline=True)
        session.wait_for_thumbnails(12)
        # naturalWidth is density-corrected for srcset candidates: load each chosen URL plainly for its pixels.
        shown = page.evaluate(
            "() => Promise.all([...document.querySelectorAll('[role=gridcell] img.tp-loaded')].map((i) => "
            "new Promise((done) => { const plain = new Image(); plain.onload = () => done({src: i.currentSrc, "
            "natural: plain.naturalWidth, tall: plain.naturalHeight, shown: i.getBoundingClientRect().width}); "
            "plain.src = i.currentSrc; })))"
        )
        first_screen_bytes = page.evaluate(
            "() => performance.getEntriesByType('resource').filter((e) => e.initiatorType === 'img' "
            "|| e.initiatorType === 'link').reduce((n, e) => n + e.encodedBodySize, 0)"
        )
        sources = {session.absolute(image["cell_thumbnail_url_2x"]): image
                   for image in session.images_by_index().values() if image.get("cell_thumbnail_url_2x")}
        offsets = session.api_offsets()
    finally:
        context.close()
    assert shown, "no thumbnail loaded"
    for tile in shown:
        assert "/cell2x/" in tile["src"] and tile["src"] in sources, tile
        # A square of up to 400 px: the demo's sources (>= 256 px on their short side) give at least
        # 0.8 source pixels per device pixel in ~155 px cells, where the 200 px thumbnail gave ~0.4.
        assert tile["natural"] == tile["tall"] <= 400, tile
        assert tile["natural"] >= 0.8 * tile["shown"] * 2, tile
    print(f"2x first screen: {len(shown)} cells, {first_screen_bytes / 1000:.0f} KB of images")
    assert first_screen_bytes < 600_000
    assert offsets[:1] == [0] and 0 not in offsets[1:], f"the inline first page was fetched again: {offsets}"
