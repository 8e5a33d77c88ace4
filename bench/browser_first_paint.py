"""First paint only, interleaved: the picker vs the plain lazy-thumbnail grid, N rounds, with a timeline.

`python -m bench.browser_first_paint [--rounds 5] [--trace DIR]` starts the browser section's demo
(`thumbs demo --profile realistic --images 1000`, thumbnails warmed) and the plain grid
(bench/naive_grid.html?thumbnails), then loads picker, plain, picker, plain, ... each in a fresh
headless Chromium with an empty cache at 1280x800, with the browser section's own probe
(bench/browser_probe.js: *first 12 painted* is its figure). Only the first screen is measured (no
scrolling), so rounds are short and the two pages meet the same machine load.

Each load also records when things happened (ms from navigation start, from the page's own
Performance timeline): the document, the script and style, the listing request, every thumbnail
request's start and end, the first cell and first <img> in the DOM, first paint, long tasks. The
result (medians, ratio picker/plain, every round) goes to bench/results/browser_first_paint.json; it
is not a section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from bench.browser import CHROMIUM, CHROMIUM_ARGS, IMAGES, PROBE, VIEWPORT, demo_server, warm_thumbnails
from bench.browser_naive import serving_naive_grid
from bench.context import Context
from bench.machine import describe

BASELINE = "plain_lazy_thumbs"

# Installed after the probe: marks of DOM milestones and long tasks; a resource buffer big enough
# for the plain grid (Chromium keeps 250 resource entries by default).
TIMELINE = """
(() => {
  const marks = {};
  const longtasks = [];
  window.__timeline = { marks, longtasks };
  performance.setResourceTimingBufferSize(5000);
  const mark = (name, at) => { if (!(name in marks)) marks[name] = at ?? performance.now(); };
  const seen = new MutationObserver(() => {
    if (!("firstCell" in marks) && document.querySelector('[role="gridcell"]')) mark("firstCell");
    if (!("firstImg" in marks) && document.querySelector('[role="gridcell"] img')) mark("firstImg");
    if ("firstCell" in marks && "firstImg" in marks) seen.disconnect();
  });
  seen.observe(document, { childList: true, subtree: true });
  // Element Timing on the first cells' images (set by this script, on both pages alike): when each
  // was presented. The 12th is the presented counterpart of the probe's "first 12 complete".
  const presented = [];
  window.__timeline.presented = presented;
  let tagged = 0;
  const tag = new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) {
      if (n.nodeType !== 1) continue;
      for (const img of n.tagName === "IMG" ? [n] : n.querySelectorAll("img")) {
        if (tagged < 60 && img.closest('[role="gridcell"]')) { img.setAttribute("elementtiming", "cell"); tagged++; }
      }
    }
    if (tagged >= 60) tag.disconnect();
  });
  tag.observe(document, { childList: true, subtree: true });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.renderTime) presented.push(e.renderTime);
    }).observe({ type: "element", buffered: true });
  } catch (e) { /* no Element Timing */ }
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) longtasks.push([Math.round(e.startTime), Math.round(e.duration)]);
    }).observe({ type: "longtask", buffered: true });
    // When an image was first on screen (the presented frame, after raster and decode), as a
    // cross-check on the probe's figure, which is read in the animation frame before that paint.
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (e.element && e.element.tagName === "IMG") mark("firstImagePresented", e.renderTime || e.startTime);
      }
    }).observe({ type: "largest-contentful-paint", buffered: true });
  } catch (e) { /* no long task or LCP API */ }
})();
"""

# Read once the first screen is complete: everything as ms from navigation start.
READ_TIMELINE = """() => {
  const r = (x) => Math.round(x * 10) / 10;
  const nav = performance.getEntriesByType("navigation")[0];
  const paints = Object.fromEntries(performance.getEntriesByType("paint").map((p) => [p.name, r(p.startTime)]));
  const kind = (url) => {
    const path = new URL(url).pathname;
    if (path.startsWith("/t/")) return "thumbnail";
    if (path.startsWith("/api/")) return "api";
    if (path.startsWith("/assets/")) return path.endsWith(".css") ? "css" : "js";
    return "other";
  };
  const resources = performance.getEntriesByType("resource").map((e) => ({
    kind: kind(e.name), initiator: e.initiatorType, start: r(e.startTime), end: r(e.responseEnd),
    url: new URL(e.name).pathname.slice(0, 60),
  }));
  return {
    document: { responseEnd: r(nav.responseEnd), domInteractive: r(nav.domInteractive),
                domContentLoaded: r(nav.domContentLoadedEventEnd), load: r(nav.loadEventEnd) },
    paints, marks: { ...Object.fromEntries(Object.entries(window.__timeline.marks).map(([k, v]) => [k, r(v)])),
                     ...(window.__timeline.presented.length >= 12
                         ? { twelfthImagePresented: r([...window.__timeline.presented].sort((a, b) => a - b)[11]) }
                         : {}) },
    longtasks: window.__timeline.longtasks, resources,
  };
}"""


def summarise_timeline(timeline: dict[str, Any]) -> dict[str, Any]:
    """The moments that matter, from one load's full timeline."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for entry in timeline["resources"]:
        by_kind.setdefault(entry["kind"], []).append(entry)
    out: dict[str, Any] = {**timeline["document"], **timeline["paints"], **timeline["marks"]}
    for kind in ("js", "css", "api"):
        if by_kind.get(kind):
            first = min(by_kind[kind], key=lambda e: e["start"])
            out[f"{kind}_start"], out[f"{kind}_end"] = first["start"], first["end"]
    thumbs = by_kind.get("thumbnail", [])
    if thumbs:
        starts = sorted(e["start"] for e in thumbs)
        ends = sorted(e["end"] for e in thumbs)
        out["thumb_first_start"] = starts[0]
        out["thumb_12th_start"] = starts[min(11, len(starts) - 1)]
        out["thumb_12th_end"] = ends[min(11, len(ends) - 1)]
        out["thumb_preloaded"] = sum(1 for e in thumbs if e["initiator"] == "link")
    out["longtasks_ms"] = sum(d for _, d in timeline["longtasks"])
    return out


def load_once(playwright: Any, url: str, seconds: float = 15) -> dict[str, Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(path=str(PROBE))
        context.add_init_script(TIMELINE)
        page = context.new_page()
        load_before = os.getloadavg()[0]
        page.goto(url, wait_until="commit", timeout=30_000)
        page.wait_for_function("window.__bench && __bench.state.firstScreen !== null", timeout=seconds * 1000,
                               polling=100)
        state = page.evaluate("__bench.state")
        timeline = page.evaluate(READ_TIMELINE)
    finally:
        browser.close()
    return {"first_12_painted_ms": round(state["first12"], 1), "first_screen_ms": round(state["firstScreen"], 1),
            "load_average_1min": round(load_before, 2), "timeline": summarise_timeline(timeline),
            "resources": timeline["resources"], "longtasks": timeline["longtasks"]}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def run_rounds(playwright: Any, pages: dict[str, str], rounds: int) -> dict[str, Any]:
    """Every page once per round, in an order that rotates, so none always meets the same neighbour."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in pages}
    names = list(pages)
    for n in range(rounds):
        order = names[n % len(names):] + names[:n % len(names)]
        if n % 2:
            order.reverse()
        for name in order:
            sample = load_once(playwright, pages[name])
            samples[name].append(sample)
            print(f"round {n + 1} {name}: first 12 {sample['first_12_painted_ms']} ms, first screen "
                  f"{sample['first_screen_ms']} ms; {compact(sample['timeline'])}", flush=True)
    summary: dict[str, Any] = {
        name: {"first_12_painted_ms": median([s["first_12_painted_ms"] for s in runs]),
               "first_screen_ms": median([s["first_screen_ms"] for s in runs]),
               "first_12_all_ms": [s["first_12_painted_ms"] for s in runs],
               "timeline_median_ms": median_timeline([s["timeline"] for s in runs])}
        for name, runs in samples.items()}
    plain = samples[BASELINE]
    for name, runs in samples.items():
        if name == BASELINE:
            continue
        ratios = [a["first_12_painted_ms"] / b["first_12_painted_ms"] for a, b in zip(runs, plain, strict=True)]
        screen = [a["first_screen_ms"] / b["first_screen_ms"] for a, b in zip(runs, plain, strict=True)]
        summary[name]["ratio_to_plain"] = {
            "first_12_of_medians": round(summary[name]["first_12_painted_ms"]
                                         / summary[BASELINE]["first_12_painted_ms"], 3),
            "first_12_same_round": [round(r, 3) for r in ratios],
            "first_screen_of_medians": round(summary[name]["first_screen_ms"]
                                             / summary[BASELINE]["first_screen_ms"], 3),
            "first_screen_same_round": [round(r, 3) for r in screen],
        }
    return {"summary": summary, "rounds": samples}


def median_timeline(timelines: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k in timelines[0] if all(isinstance(t.get(k), (int, float)) for t in timelines)]
    return {k: median([t[k] for t in timelines]) for k in keys}


def compact(timeline: dict[str, Any]) -> str:
    keys = ("responseEnd", "js_end", "api_end", "firstCell", "firstImg", "thumb_first_start", "thumb_12th_start",
            "thumb_12th_end", "first-contentful-paint", "firstImagePresented", "twelfthImagePresented", "longtasks_ms")
    return ", ".join(f"{k}={timeline[k]}" for k in keys if k in timeline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--page", action="append", default=[], metavar="NAME=URL",
                        help="measure these running pages instead of starting the demo (one must be named "
                             f"{BASELINE}); repeatable")
    parser.add_argument("--out", type=Path, default=Context(quick=True).results / "browser_first_paint.json")
    parser.add_argument("--keep-resources", action="store_true",
                        help="keep every request's timing in the output (large), not only each load's timeline")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    warm = None
    with sync_playwright() as playwright:
        if args.page:
            pages = dict(item.split("=", 1) for item in args.page)
            result = run_rounds(playwright, pages, args.rounds)
        else:
            ctx = Context(quick=True)
            with demo_server(ctx, IMAGES) as base, serving_naive_grid(base) as naive:
                warm = warm_thumbnails(base)
                result = run_rounds(playwright, {"picker": f"{base}/", BASELINE: f"{naive}/?thumbnails"},
                                    args.rounds)
    if not args.keep_resources:
        for runs in result["rounds"].values():
            for sample in runs:
                sample.pop("resources")
    payload = {"started": started, "machine": describe(), "rounds": args.rounds, "warm": warm, **result}
    args.out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(result["summary"], option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
