"""What the browser section reads from Chromium: network bytes (CDP), memory (CDP + /proc), frames.

Network and Performance timestamps from the DevTools protocol share one monotonic clock, and
`NavigationStart` from Performance.getMetrics is on it too, so an in-page `performance.now()`
moment converts to protocol time as navigation start + ms / 1000.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

FRAME_BUDGET_MS = 1000 / 60


@dataclass
class Transfer:
    url: str
    started: float
    finished: float | None = None
    bytes_finished: int = 0  # encodedDataLength at loadingFinished: headers + body as on the wire
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (timestamp, encoded bytes) while arriving
    status: int | None = None


class NetworkLog:
    """Every request of one page, from a CDP session with Network enabled."""

    def __init__(self, session: Any) -> None:
        self.transfers: dict[str, Transfer] = {}
        self.failed = 0
        self.canceled = 0  # the picker cancels downloads of cells scrolled out of the DOM
        session.on("Network.requestWillBeSent", self._sent)
        session.on("Network.responseReceived", self._response)
        session.on("Network.dataReceived", self._data)
        session.on("Network.loadingFinished", self._finished)
        session.on("Network.loadingFailed", self._failed)

    def _sent(self, event: dict[str, Any]) -> None:
        # A redirect reuses the request id; keep the first start.
        self.transfers.setdefault(event["requestId"], Transfer(event["request"]["url"], event["timestamp"]))

    def _response(self, event: dict[str, Any]) -> None:
        transfer = self.transfers.get(event["requestId"])
        if transfer:
            transfer.status = int(event["response"]["status"])

    def _data(self, event: dict[str, Any]) -> None:
        transfer = self.transfers.get(event["requestId"])
        if transfer:
            # Chromium's network service often leaves encodedDataLength 0 here; image bodies are not
            # content-encoded, so the decoded length is the wire length.
            size = int(event.get("encodedDataLength") or 0) or int(event.get("dataLength") or 0)
            transfer.chunks.append((event["timestamp"], size))

    def _finished(self, event: dict[str, Any]) -> None:
        transfer = self.transfers.get(event["requestId"])
        if transfer:
            transfer.finished = event["timestamp"]
            transfer.bytes_finished = int(event["encodedDataLength"])

    def _failed(self, event: dict[str, Any]) -> None:
        if event.get("canceled"):
            self.canceled += 1
        else:
            self.failed += 1
        transfer = self.transfers.get(event["requestId"])
        if transfer and transfer.finished is None:
            transfer.finished = event["timestamp"]

    def bytes_until(self, moment: float) -> dict[str, int]:
        """Bytes of responses finished by ``moment``, and those plus what in-flight ones had received."""
        finished = in_flight = requests = 0
        for transfer in self.transfers.values():
            if transfer.started > moment:
                continue
            requests += 1
            if transfer.finished is not None and transfer.finished <= moment:
                finished += transfer.bytes_finished
            else:
                in_flight += sum(size for at, size in transfer.chunks if at <= moment)
        return {"finished": finished, "with_in_flight": finished + in_flight, "requests": requests}

    def totals(self) -> dict[str, int]:
        done = [t for t in self.transfers.values() if t.finished is not None]
        return {"requests": len(self.transfers), "finished": len(done), "failed": self.failed,
                "canceled": self.canceled, "bytes": sum(t.bytes_finished for t in done)}


    def milestones(self, navigation_start: float) -> dict[str, dict[str, float]]:
        """Per kind of URL, ms from navigation: first request sent, first and 12th response finished."""
        by_kind: dict[str, list[Transfer]] = {}
        for transfer in self.transfers.values():
            by_kind.setdefault(url_kind(transfer.url), []).append(transfer)
        result = {}
        for kind, transfers in by_kind.items():
            starts = sorted(t.started for t in transfers)
            ends = sorted(t.finished for t in transfers if t.finished is not None and t.status == 200)
            row = {"first_sent_ms": round((starts[0] - navigation_start) * 1000, 1)}
            for label, n in (("first_done_ms", 1), ("twelfth_done_ms", 12)):
                if len(ends) >= n:
                    row[label] = round((ends[n - 1] - navigation_start) * 1000, 1)
            result[kind] = row
        return result

    def statuses(self) -> dict[str, dict[str, int]]:
        """Responses per kind of URL and status: thumbnails (/t/), full originals (/images/), API, other."""
        counts: dict[str, dict[str, int]] = {}
        for transfer in self.transfers.values():
            kind = url_kind(transfer.url)
            status = str(transfer.status or "no response")
            counts.setdefault(kind, {}).setdefault(status, 0)
            counts[kind][status] += 1
        return counts


def url_kind(url: str) -> str:
    path = urlsplit(url).path
    for prefix, kind in (("/t/", "thumbnail"), ("/images/", "original"), ("/api/", "api"), ("/assets/", "asset")):
        if path.startswith(prefix):
            return kind
    return "page" if path == "/" else "other"


def metrics(session: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in session.send("Performance.getMetrics")["metrics"]}


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from /proc (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def private_bytes(pid: int) -> int:
    """Memory only ``pid`` holds (Private_Clean + Private_Dirty from smaps_rollup): no shared code pages."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return sum(int(line.split()[1]) * 1024 for line in rollup.splitlines()
               if line.startswith(("Private_Clean:", "Private_Dirty:")))


def process_memory(browser_session: Any) -> dict[str, int]:
    """RSS per Chromium process type; `renderer_max` is the page's renderer (the others are spares)."""
    processes = browser_session.send("SystemInfo.getProcessInfo")["processInfo"]
    by_type: dict[str, list[int]] = {}
    for process in processes:
        by_type.setdefault(process["type"], []).append(rss_bytes(int(process["id"])))
    renderers = by_type.get("renderer", [0])
    renderer_pids = [int(p["id"]) for p in processes if p["type"] == "renderer"]
    page_renderer = max(renderer_pids, key=rss_bytes, default=0)
    return {"renderer_max": max(renderers), "renderer_private": private_bytes(page_renderer) if page_renderer else 0,
            "renderers_total": sum(renderers),
            "gpu": sum(by_type.get("GPU", [0])), "browser": sum(by_type.get("browser", [0])),
            "all": sum(sum(v) for v in by_type.values())}


def frame_stats(deltas: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99 of rAF deltas and the share of frames over 33 ms (two budgets missed)."""
    if not deltas:
        return {"frames": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None,
                "over_33ms_pct": None, "dropped_pct": None}
    values = np.asarray(deltas)
    return {
        "frames": int(values.size),
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p95_ms": round(float(np.percentile(values, 95)), 1),
        "p99_ms": round(float(np.percentile(values, 99)), 1),
        "max_ms": round(float(values.max()), 1),
        "over_33ms_pct": round(float((values > 33.0).mean() * 100), 2),
        # A frame took longer than one vsync interval (allowing the clock's 0.1-0.2 ms jitter).
        "dropped_pct": round(float((values > FRAME_BUDGET_MS * 1.5).mean() * 100), 2),
    }


def mib(value: float) -> float:
    return round(value / 2**20, 1)
