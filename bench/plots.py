"""matplotlib figures for docs/BENCHMARKS.md, one function per figure, each saved as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"ours": "#1f77b4", "pillow": "#ff7f0e", "pyvips": "#2ca02c"}


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_image(summary: list[dict[str, Any]], path: Path) -> Path:
    kinds = list(dict.fromkeys(row["kind"] for row in summary))
    methods = list(dict.fromkeys(row["method"] for row in summary))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        rows = {row["kind"]: row for row in summary if row["method"] == method}
        xs = [k + i * width for k in range(len(kinds))]
        axes[0].bar(xs, [rows[k]["median_ms"] for k in kinds], width, label=method, color=COLOURS.get(method))
        axes[1].bar(xs, [rows[k]["bytes_median"] / 1000 for k in kinds], width, label=method,
                    color=COLOURS.get(method))
    for axis, title in ((axes[0], "median ms per image (in-process, 1 thread)"),
                        (axes[1], "median output KB (200 px JPEG, q65)")):
        axis.set_xticks([k + 0.4 - width / 2 for k in range(len(kinds))], kinds, fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=8)
    axes[0].set_yscale("log")
    return _save(fig, path)


def throughput(runs: list[dict[str, Any]], path: Path) -> Path:
    fig, axis = plt.subplots(figsize=(6.5, 4))
    for server in dict.fromkeys(run["server"] for run in runs):
        points = sorted((r["concurrency"], r["throughput_rps"]) for r in runs
                        if r["server"] == server and r["kind"] == "photo4k_jpeg")
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=server)
    axis.set_xscale("log", base=2)
    axis.set_xticks([1, 4, 16], ["1", "4", "16"])
    axis.set_xlabel("concurrent users")
    axis.set_ylabel("thumbnails / s")
    axis.set_title("Cold 4K JPEG -> 200 px, every request a new source", fontsize=10)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    return _save(fig, path)


def cdfs(runs: list[dict[str, Any]], path: Path) -> Path:
    concurrencies = sorted({run["concurrency"] for run in runs if run["kind"] == "photo4k_jpeg"})
    fig, axes = plt.subplots(1, len(concurrencies), figsize=(4 * len(concurrencies), 3.6), sharey=True)
    for axis, concurrency in zip(axes, concurrencies, strict=True):
        for run in runs:
            if run["kind"] == "photo4k_jpeg" and run["concurrency"] == concurrency and run["cdf"]:
                axis.plot([p[0] for p in run["cdf"]], [p[1] for p in run["cdf"]], label=run["server"])
        axis.set_title(f"cold latency CDF, c={concurrency}", fontsize=10)
        axis.set_xlabel("ms")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of requests")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def fractions(warm: dict[str, Any], path: Path) -> Path:
    ceiling = "raw_asgi_ceiling" if "raw_asgi_ceiling" in warm else "starlette_ceiling"
    cells = [("memory\n1 URL", "direct_memory", warm["fraction_memory"], "#1f77b4")]
    if "direct_memory_hot_set" in warm:
        cells.append((f"memory\n{warm['hot_set_urls']} URLs", "direct_memory_hot_set", warm["fraction_memory_hot_set"],
                      "#1f77b4"))
    cells += [("redis", "direct_redis", warm["fraction_redis"], "#1f77b4"),
              ("disk", "direct_disk", warm["fraction_disk"], "#1f77b4")]
    if ceiling == "raw_asgi_ceiling":
        cells.append(("raw ASGI\nceiling", "raw_asgi_ceiling", 1.0, "#bbbbbb"))
    cells += [("Starlette\n(reference)", "starlette_ceiling",
               warm["starlette_ceiling"]["rps"] / warm[ceiling]["rps"], "#dddddd"),
              ("nginx HIT", "nginx_hit", warm["fraction_nginx_hit"], "#d62728"),
              ("nginx static\nceiling", "nginx_static", 1.0, "#bbbbbb")]
    fig, axis = plt.subplots(figsize=(9, 4))
    values = [warm[key]["rps"] for _, key, _, _ in cells]
    low = [value - warm[key].get("rps_spread", [value, value])[0] for (_, key, _, _), value in zip(cells, values,
                                                                                                  strict=True)]
    high = [warm[key].get("rps_spread", [value, value])[1] - value for (_, key, _, _), value in zip(cells, values,
                                                                                                   strict=True)]
    bars = axis.bar([label for label, *_ in cells], values, color=[colour for *_, colour in cells],
                    yerr=[low, high], capsize=2)
    for bar, (_, _, note, _) in zip(bars, cells, strict=True):
        axis.annotate(f"{note:.0%}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=8)
    axis.set_yscale("log")
    axis.set_ylabel("req/s (log)")
    axis.tick_params(axis="x", labelsize=8)
    axis.set_title("Warm hits vs their ceilings (one proxy worker; wrk, 1 thread, 32 connections)", fontsize=10)
    return _save(fig, path)


def scale(rows: list[dict[str, Any]], path: Path) -> Path:
    fig, axis = plt.subplots(figsize=(6, 4))
    workers = [row["workers"] for row in rows]
    axis.plot(workers, [row["cold_speedup"] for row in rows], marker="o", label="cold (through nginx, MISS)")
    axis.plot(workers, [row["warm_speedup"] for row in rows], marker="s", label="warm (memory hits via nginx)")
    axis.plot(workers, workers, linestyle=":", color="grey", label="linear")
    axis.set_xticks(workers)
    axis.set_xlabel("uvicorn workers (2 cores)")
    axis.set_ylabel("throughput vs 1 worker")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    return _save(fig, path)


def browser(pages: dict[str, dict[str, Any]], path: Path) -> Path:
    metrics = [("first_12_painted_ms", "first 12 painted (ms)"),
               ("bytes_before_first_screen_kb", "KB before 1st screen"), ("frame_p95_ms", "p95 frame (ms)"),
               ("renderer_memory_mb", "renderer MB"), ("img_elements", "<img> count")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(14, 3.4))
    names = list(pages)
    for axis, (key, title) in zip(axes, metrics, strict=True):
        values = [pages[name].get(key) for name in names]
        bars = axis.bar(names, [v or 0 for v in values], color=["#1f77b4", "#d62728", "#2ca02c"][: len(names)])
        for bar, value in zip(bars, values, strict=True):
            axis.annotate("n/a" if value is None else f"{value:,.0f}",
                          (bar.get_x() + bar.get_width() / 2, bar.get_height() or 1), ha="center", va="bottom",
                          fontsize=8)
        axis.set_yscale("log")  # the two pages differ by orders of magnitude
        axis.set_title(title, fontsize=9)
        axis.tick_params(labelsize=8)
    fig.suptitle("Picker vs naive grid of the full originals (headless Chromium, log scale)", fontsize=10)
    return _save(fig, path)


def peers(summary: list[dict[str, Any]], labels: dict[str, str], path: Path) -> Path:
    """CPU ms per thumbnail (median of rounds, min-max whiskers) and thumbnails/s at c=4, per class."""
    kinds = [k for k in labels if any(row["kind"] == k for row in summary)]
    systems = list(dict.fromkeys(row["system"] for row in summary))
    cells = {(row["system"], row["kind"]): row for row in summary if row["concurrency"] == 4}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        xs = [k + i * width for k in range(len(kinds))]
        rows = [cells.get((system, kind), {}) for kind in kinds]
        for axis, metric in ((axes[0], "cpu_ms_per_thumbnail"), (axes[1], "thumbnails_per_s")):
            values = [row.get(metric, 0) for row in rows]
            spreads = [row.get(f"{metric}_spread", [value, value]) for row, value in zip(rows, values, strict=True)]
            errors = [[v - s[0] for v, s in zip(values, spreads, strict=True)],
                      [s[1] - v for v, s in zip(values, spreads, strict=True)]]
            axis.bar(xs, values, width, yerr=errors, capsize=2, label=system)
    for axis, title in ((axes[0], "CPU ms per cold thumbnail, c=4 (lower is better)"),
                        (axes[1], "cold thumbnails / s, c=4 (higher is better)")):
        axis.set_xticks([k + 0.4 - width / 2 for k in range(len(kinds))], [labels[k] for k in kinds], fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=7)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_yscale("log")
    return _save(fig, path)
