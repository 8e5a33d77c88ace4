"""Section 5: the picker vs a naive grid of the 1,000 full originals (and a plain grid of lazy thumbnails),
in headless Chromium.

Every page gets the same script (bench/browser_probe.js, installed before any page script) in a
fresh Chromium each, with an empty cache, at 1280x800:

1. navigate; first 12 painted and first screen complete, polled once per animation frame;
   bytes on the wire until the first screen was complete (CDP Network events);
2. pass 1: a continuous rAF-driven scroll top to bottom at a fixed px/frame (frame deltas);
3. renderer memory (RSS from /proc of the renderer pids CDP SystemInfo names; JS heap from
   Performance.getMetrics);
4. flicks back to the top: scroll 1.5 screens, stop, 300 ms later count visible cells whose <img>
   is not loaded (blank);
5. pass 2 top to bottom again, memory again (flat or growing).

Every phase is bounded in time; the naive grid usually hits the bounds, and the result says so.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.browser_metrics import NetworkLog, frame_stats, metrics, mib, process_memory
from bench.browser_naive import serving_naive_grid
from bench.context import Context
from bench.services import PYTHON, free_port, running

PROBE = Path(__file__).with_name("browser_probe.js")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}
IMAGES = 1000
SETTLE_MS = 300


@dataclass(frozen=True)
class Budget:
    """How fast to scroll and how long each phase may take (seconds)."""

    px_per_frame: int
    first_screen_s: float
    pass_s: float
    flicks_s: float
    flick_screens: float
    extra_passes: int  # after pass 2, to see whether renderer memory levels off

    @classmethod
    def for_run(cls, ctx: Context) -> Budget:
        if ctx.quick:
            return cls(px_per_frame=80, first_screen_s=8, pass_s=8, flicks_s=8, flick_screens=4, extra_passes=0)
        return cls(px_per_frame=40, first_screen_s=90, pass_s=60, flicks_s=60, flick_screens=1.5, extra_passes=1)


@contextlib.contextmanager
def demo_server(ctx: Context, images: int) -> Iterator[str]:
    """`thumbs demo --profile realistic` under var/bench/browser (the originals are generated once)."""
    data_dir = ctx.work / "browser" / "demo"
    port, origin_port = demo_ports(data_dir)
    environment = {"THUMBS_DATA_DIR": str(data_dir), "THUMBS_PORT": str(port),
                   "THUMBS_DEMO_ORIGIN_PORT": str(origin_port), "PYTHONUNBUFFERED": "1"}
    argv = [PYTHON, "-m", "thumbs.cli", "demo", "--profile", "realistic", "--images", str(images)]
    base = f"http://127.0.0.1:{port}"
    with running(argv, ctx.work / "logs" / "browser-demo.log", env=environment) as process:
        wait_for_library(base, images, process, seconds=900)
        yield base


def warm_thumbnails(base: str, seconds: float = 900) -> dict[str, Any]:
    """Request every thumbnail once, so the picker meets the steady state (thumbnails made at ingest).

    A pipeline version change makes every stored thumbnail stale; this re-renders them before the
    measurement instead of letting the first browse do it (reported, not hidden: see `warm`).
    """
    urls: list[str] = []
    offset = 0
    while True:
        page = httpx.get(f"{base}/api/library/images", params={"limit": 200, "offset": offset}, timeout=10).json()
        # The picker's tiles load the cell variants (srcset); the thumbnail is the API's too.
        urls += [image[key] for image in page["images"]
                 for key in ("thumbnail_url", "cell_thumbnail_url", "cell_thumbnail_url_2x") if image.get(key)]
        offset += 200
        if offset >= page["total"]:
            break
    started = time.monotonic()
    deadline = started + seconds
    retried = 0

    def fetch(client: httpx.Client, url: str) -> int:
        nonlocal retried
        while True:
            response = client.get(url, timeout=60)
            if response.status_code != 503 or time.monotonic() > deadline:
                return response.status_code
            retried += 1
            time.sleep(float(response.headers.get("retry-after", "1")))

    with httpx.Client() as client, ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda url: fetch(client, url), urls))
    return {"thumbnails": len(urls), "seconds": round(time.monotonic() - started, 1), "retried_503": retried,
            "statuses": {str(code): statuses.count(code) for code in sorted(set(statuses))}}


def demo_ports(data_dir: Path) -> tuple[int, int]:
    """The ports this data dir was seeded with: the library stores the origin's URLs, port included."""
    record = data_dir / "bench-ports.json"
    if record.exists():
        ports = orjson.loads(record.read_bytes())
        return int(ports["port"]), int(ports["origin_port"])
    port, origin_port = free_port(), free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    record.write_bytes(orjson.dumps({"port": port, "origin_port": origin_port}))
    return port, origin_port


def wait_for_library(base: str, images: int, process: Any, seconds: float) -> None:
    """Until the library lists ``images`` images, every one with its thumbnail ready."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"thumbs demo exited with {process.returncode} (see var/bench/logs/browser-demo.log)")
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            if ready_count(base) >= images:
                return
        time.sleep(1)
    raise RuntimeError(f"the demo library was not ready with {images} thumbnails within {seconds:.0f} s")


def ready_count(base: str) -> int:
    ready, offset = 0, 0
    while True:
        page = httpx.get(f"{base}/api/library/images", params={"limit": 200, "offset": offset}, timeout=10).json()
        ready += sum(1 for image in page["images"] if image.get("thumbnail_status") == "ready")
        offset += 200
        if offset >= page["total"]:
            return ready


def measure_page(playwright: Any, url: str, budget: Budget) -> dict[str, Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        browser_session = browser.new_browser_cdp_session()
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(path=str(PROBE))
        page = context.new_page()
        session = context.new_cdp_session(page)
        session.send("Network.enable")
        session.send("Performance.enable")
        network = NetworkLog(session)
        return run_script(page, session, browser_session, network, url, budget)
    finally:
        browser.close()


def run_script(page: Any, session: Any, browser_session: Any, network: NetworkLog, url: str,
               budget: Budget) -> dict[str, Any]:
    notes: list[str] = []
    load_before = os.getloadavg()[0]
    page.goto(url, wait_until="commit", timeout=30_000)
    state = wait_first_screen(page, budget.first_screen_s)
    navigation_start = metrics(session)["NavigationStart"]
    if state["firstScreen"] is None:
        page.evaluate("__bench.stop()")
        notes.append(f"first screen not complete within {budget.first_screen_s:.0f} s")
    if state["first12"] is None:
        notes.append(f"first 12 not painted within {budget.first_screen_s:.0f} s")
    cutoff_ms = state["firstScreen"] if state["firstScreen"] is not None else budget.first_screen_s * 1000
    before_first_screen = network.bytes_until(navigation_start + cutoff_ms / 1000)
    page.wait_for_timeout(500)
    geometry = page.evaluate("__bench.geometry()")

    pass1 = page.evaluate("([px, ms]) => __bench.scroll(1, px, Infinity, ms)", [budget.px_per_frame,
                                                                              budget.pass_s * 1000])
    if pass1["timedOut"]:
        notes.append(f"pass 1 reached {pass1['scrollTop'] / max(1, pass1['scrollEnd']):.0%} of the library "
                     f"in {budget.pass_s:.0f} s")
    page.wait_for_timeout(SETTLE_MS)
    at_bottom = page.evaluate("__bench.blankCount()")
    page.wait_for_timeout(1000)
    memory1 = memory(session, browser_session)

    flicks = run_flicks(page, budget, geometry["clientHeight"])
    if not flicks["reached_top"]:
        notes.append(f"flicks back to the top stopped after {budget.flicks_s:.0f} s")
    page.evaluate("__bench.scrollToTop()")
    page.wait_for_timeout(500)
    pass2 = page.evaluate("([px, ms]) => __bench.scroll(1, px, Infinity, ms)", [budget.px_per_frame,
                                                                              budget.pass_s * 1000])
    if pass2["timedOut"]:
        notes.append(f"pass 2 reached {pass2['scrollTop'] / max(1, pass2['scrollEnd']):.0%} of the library "
                     f"in {budget.pass_s:.0f} s")
    page.wait_for_timeout(1000)
    memory2 = memory(session, browser_session)
    later = []
    for n in range(budget.extra_passes):
        page.evaluate("__bench.scrollToTop()")
        page.wait_for_timeout(500)
        extra = page.evaluate("([px, ms]) => __bench.scroll(1, px, Infinity, ms)", [budget.px_per_frame,
                                                                                  budget.pass_s * 1000])
        if extra["timedOut"]:
            notes.append(f"pass {n + 3} did not reach the end in {budget.pass_s:.0f} s")
        page.wait_for_timeout(1000)
        later.append(memory(session, browser_session))
    by_pass = [memory1, memory2, *later]
    state = page.evaluate("__bench.state")

    samples = [at_bottom, *flicks["samples"]]
    visible = sum(s["visible"] for s in samples)
    blank = sum(s["blank"] for s in samples)
    frames1, frames2 = frame_stats(pass1["frames"]), frame_stats(pass2["frames"])
    growth = memory2["renderer_rss"] - memory1["renderer_rss"]
    return {
        "summary": {
            "first_12_painted_ms": _ms(state["first12"]),
            "first_screen_ms": _ms(state["firstScreen"]),
            "bytes_before_first_screen_kb": round(before_first_screen["with_in_flight"] / 1000, 1),
            "requests_before_first_screen": before_first_screen["requests"],
            "library_scrolled_pass1_pct": round(pass1["moved"] / max(1, pass1["scrollEnd"]) * 100),
            "frame_p95_ms": frames1["p95_ms"],
            "frames_over_33ms_pct": frames1["over_33ms_pct"],
            "frame_p95_pass2_ms": frames2["p95_ms"],
            "blank_cells_pct": round(blank / visible * 100, 1) if visible else None,
            "renderer_memory_mb": mib(memory1["renderer_rss"]),
            "renderer_memory_pass2_mb": mib(memory2["renderer_rss"]),
            "renderer_memory_by_pass_mb": [mib(m["renderer_rss"]) for m in by_pass],
            "renderer_private_mb": mib(memory1["renderer_private"]),
            "renderer_private_pass2_mb": mib(memory2["renderer_private"]),
            "js_heap_mb": mib(memory2["js_heap_used"]),
            "img_elements": state["maxImgs"],
            "dom_elements_max": state["maxNodes"],
            "bytes_total_mb": round(network.totals()["bytes"] / 1e6, 1),
            "requests_total": network.totals()["requests"],
            "notes": "; ".join(notes) or "all phases finished",
        },
        "detail": {
            "before_first_screen": before_first_screen, "geometry": geometry,
            "pass1": {**frames1, **_pass_extent(pass1)}, "pass2": {**frames2, **_pass_extent(pass2)},
            "blank_samples": samples, "memory_by_pass": by_pass,
            "milestones_ms": network.milestones(navigation_start),
            "renderer_growth_mb": mib(growth), "network": network.totals(),
            "responses": network.statuses(),
            "load_average_1min": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        },
    }


def wait_first_screen(page: Any, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        state: dict[str, Any] = page.evaluate("window.__bench ? __bench.state : null") or {
            "first12": None, "firstScreen": None}
        if state["firstScreen"] is not None or time.monotonic() > deadline:
            return state
        page.wait_for_timeout(100)


def run_flicks(page: Any, budget: Budget, screen_px: int) -> dict[str, Any]:
    """From the bottom back to the top: scroll, stop, count blank cells 300 ms later; repeat."""
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + budget.flicks_s
    distance = int(screen_px * budget.flick_screens)
    while time.monotonic() < deadline:
        sample = page.evaluate("([px, d, settle, ms]) => __bench.flick(-1, px, d, settle, ms)",
                               [budget.px_per_frame, distance, SETTLE_MS, budget.flicks_s * 1000])
        samples.append(sample)
        if sample["atEnd"]:
            return {"samples": samples, "reached_top": True}
    return {"samples": samples, "reached_top": False}


def memory(session: Any, browser_session: Any) -> dict[str, Any]:
    values = metrics(session)
    processes = process_memory(browser_session)
    return {"renderer_rss": processes["renderer_max"], "renderer_private": processes["renderer_private"],
            "renderers_rss": processes["renderers_total"],
            "gpu_rss": processes["gpu"], "chromium_rss": processes["all"],
            "js_heap_used": values["JSHeapUsedSize"], "dom_nodes": values["Nodes"]}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _pass_extent(scroll: dict[str, Any]) -> dict[str, Any]:
    return {"reached_end": scroll["atEnd"], "scrolled_px": round(scroll["moved"]), "scroll_end_px": scroll["scrollEnd"]}


METHOD = (
    "Headless Chromium ({chromium}), 1280x800, a fresh browser and empty cache per page, the same script "
    "(`bench/browser_probe.js`) for every page. **picker**: the demo page (`thumbs demo --profile realistic "
    "--images {images}`, thumbnails warmed at ingest). **naive**: `bench/naive_grid.html`, which pages "
    "through the same API and shows every full original (1-5 MB PNG/JPEG) as a plain `<img>` in a CSS "
    "grid of the same columns, served by the bench with `/api` forwarded to the demo; the originals come "
    "from the demo's stand-in origin on loopback. **plain_lazy_thumbs**: the same page with `?thumbnails`: "
    "the same plain grid with all 1,000 cells in the DOM (no virtualisation), each `<img>` showing what the "
    "picker's tile shows (`cell_thumbnail_url`, srcset 1x/2x, sizes = the cell's width) with "
    "`loading=\"lazy\"` on every image: it splits the picker's gain between thumbnails and "
    "virtualisation. *First 12 painted*: the first animation frame (polled "
    "every frame from navigation) at which the first 12 visible cells' images are `complete` with a "
    "decoded size (the picker's first-screen tiles show at once; only later tiles fade in over 160 ms). "
    "*Bytes before first screen*: CDP "
    "`Network.loadingFinished` encodedDataLength of responses done by the frame at which every visible "
    "cell had its image, plus bytes already received by responses still in flight. *Scroll*: "
    "requestAnimationFrame-driven, {px} px per frame top to bottom (pass 1, the first browse with an "
    "empty browser cache, is the headline; pass 2 repeats it); frame time = delta between rAF callbacks. "
    "*Blank cells*: after "
    "pass 1, flicks of {flick} screens back to the top at the same speed; 300 ms after each stop, "
    "visible cells whose `<img>` is missing or not loaded. *Renderer memory*: RSS (/proc VmRSS) of the "
    "page's renderer process (pid from CDP `SystemInfo.getProcessInfo`), after pass 1 and after pass 2 "
    "(the target's figure; *private* = Private_Clean + Private_Dirty from smaps_rollup, without shared "
    "code pages); "
    "JS heap from `Performance.getMetrics`; the full run adds a third pass to see whether memory levels off. "
    "*img elements*: the most `document.images` held at any "
    "frame. Bounds: first screen {first_screen:.0f} s, each pass {pass_s:.0f} s, flicks {flicks:.0f} s; "
    "a page that hits a bound is reported with what it reached (see notes). "
    "Reproduce: `.venv/bin/python -m bench.run browser`."
)


CAVEATS = [
    "The machine is shared with other work (2 cores); frame times move with its load. The 1-minute load "
    "average before and after each page is in `bench/results/browser.json` (detail.*.load_average_1min).",
    "rAF deltas are quantised to the 60 Hz vsync and jitter by 0.1-0.2 ms (16.6-16.8 ms for an on-time frame), "
    "so a p95 of 16.7-16.8 ms means no dropped frame at p95; `dropped_pct` in the detail counts deltas over "
    "1.5 intervals.",
    "First 12 painted is the animation frame at which the images are loaded, measured before that frame "
    "is painted, for every page alike; the picker's first-screen tiles have no fade-in (`tp-first-screen`). "
    "`bench/browser_first_paint.py` measures the first screen alone, picker and plain grid interleaved.",
    "Thumbnails are warmed before measuring (the product warms them at ingest); `warm` in the results says how "
    "many had to be made. A first browse against a stale store (e.g. right after a pipeline version change) "
    "is a different, much worse case that this section does not report.",
    "The naive grid requests all 1,000 originals at once with no lazy loading, as the Playground does today; "
    "its blank-cell figure is measured after pass 1, when most originals have arrived, and only over the "
    "part of the library its passes reached within the bounds (`library_scrolled_pass1_pct`).",
    "plain_lazy_thumbs leaves the choice of what to load to the browser's lazy-loading distance (Chromium "
    "loads lazy images well before they scroll into view) and keeps every cell and <img> in the DOM; its "
    "first screen is not preloaded or inlined as the picker's is.",
    "Renderer memory is RSS of the page's renderer process; with --disable-gpu, raster tiles live partly in "
    "the GPU process, whose RSS is in the detail (`gpu_rss`).",
]


def run(ctx: Context) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    budget = Budget.for_run(ctx)
    pages: dict[str, dict[str, Any]] = {}
    with demo_server(ctx, IMAGES) as base, serving_naive_grid(base) as naive_base, sync_playwright() as playwright:
        warm = warm_thumbnails(base)
        print(f"   browser: thumbnails warmed: {warm}", flush=True)
        for name, url in (("picker", f"{base}/"), ("naive", f"{naive_base}/"),
                          ("plain_lazy_thumbs", f"{naive_base}/?thumbnails")):
            print(f"   browser: {name} ({url})", flush=True)
            pages[name] = measure_page(playwright, url, budget)
            print(f"   browser: {name}: {pages[name]['summary']}", flush=True)
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        version = chromium.version
        chromium.close()
    method = METHOD.format(chromium=version, images=IMAGES, px=budget.px_per_frame, flick=budget.flick_screens,
                           first_screen=budget.first_screen_s, pass_s=budget.pass_s, flicks=budget.flicks_s)
    return {
        "method": method,
        "caveats": CAVEATS,
        "budget": asdict(budget),
        "warm": warm,
        "pages": {name: page["summary"] for name, page in pages.items()},
        "detail": {name: page["detail"] for name, page in pages.items()},
    }
