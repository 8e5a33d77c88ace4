"""Cold store: scroll the picker for 8 s at 40 px/frame and count what the browser fetched.

Not part of `make bench` (which warms thumbnails first, as ingest does in the product). Run it
against a demo whose thumbnail store was emptied:

    rm -rf var/thumbs && make demo
    .venv/bin/python -m bench.browser_cold_scroll http://127.0.0.1:8080/
"""

from __future__ import annotations

import sys
import time
from collections import Counter

from playwright.sync_api import Request, Response, sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCROLL = """() => new Promise(done => {
  const grid = document.querySelector('[role=grid]');
  let frames = 0;
  function step() { grid.scrollTop += 40; if (++frames < 480) requestAnimationFrame(step); else done(); }
  requestAnimationFrame(step);
})"""
BLANK_CELLS = """() => {
  const box = document.querySelector('[role=grid]').getBoundingClientRect();
  const visible = [...document.querySelectorAll('[role=gridcell]')].filter(cell => {
    const r = cell.getBoundingClientRect();
    return r.bottom > box.top && r.top < box.bottom;
  });
  const blank = visible.filter(cell => {
    const img = cell.querySelector('img');
    return !img || !img.complete || !img.naturalWidth;
  });
  return [blank.length, visible.length];
}"""


def kind(url: str) -> str:
    return "thumbnail" if "/t/" in url else "original" if "/images/" in url else "other"


def main(url: str) -> None:
    statuses: Counter[tuple[str, int]] = Counter()
    body_bytes: Counter[str] = Counter()

    def on_response(response: Response) -> None:
        statuses[(kind(response.url), response.status)] += 1

    def on_finished(request: Request) -> None:
        body_bytes[kind(request.url)] += request.sizes()["responseBodySize"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("response", on_response)
        page.on("requestfinished", on_finished)
        page.goto(url)
        page.wait_for_selector("[role=grid]")
        started = time.monotonic()
        page.evaluate(SCROLL)
        page.wait_for_timeout(300)
        after_300ms = page.evaluate(BLANK_CELLS)
        page.wait_for_timeout(2700)
        after_3s = page.evaluate(BLANK_CELLS)
        browser.close()
    print(f"scrolled for {time.monotonic() - started - 3:.1f} s")
    print(f"blank visible cells: {after_300ms[0]}/{after_300ms[1]} after 300 ms, {after_3s[0]}/{after_3s[1]} after 3 s")
    print("responses by kind and status:", dict(statuses))
    print("body bytes (MB):", {name: round(count / 1e6, 2) for name, count in body_bytes.items()})


if __name__ == "__main__":
    main(sys.argv[1])
