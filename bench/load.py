"""Load generators. Cold: an asyncio httpx client over a bounded list of URLs. Warm: wrk.

Every loop is bounded in requests and in time. Cold runs are slow per request (tens of ms),
so a Python client costs little of the shared CPU; warm runs reach tens of thousands of
requests a second, which only a C client like wrk can drive from one core.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.stats import cdf_points, summary_ms


@dataclass
class Outcome:
    started: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bytes: list[int] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0

    def report(self) -> dict[str, Any]:
        ok = self.statuses.get(200, 0)
        return {
            "requests": sum(self.statuses.values()) + self.errors, "ok": ok, "statuses": self.statuses,
            "errors": self.errors, "wall_s": round(self.wall, 3),
            "throughput_rps": round(ok / self.wall, 2) if self.wall else 0.0,
            "latency": summary_ms(self.latencies), "cdf": cdf_points(self.latencies),
            "bytes_median": sorted(self.bytes)[len(self.bytes) // 2] if self.bytes else None,
        }


async def _cold(urls: Sequence[str], concurrency: int, time_limit: float) -> Outcome:
    outcome = Outcome()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    deadline = time.monotonic() + time_limit
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0)) as client:

        async def user() -> None:
            while not queue.empty() and time.monotonic() < deadline:
                url = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                except httpx.HTTPError:
                    outcome.errors += 1
                    continue
                outcome.latencies.append(time.perf_counter() - started)
                outcome.statuses[response.status_code] = outcome.statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    outcome.bytes.append(len(response.content))

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        outcome.wall = time.perf_counter() - started
    return outcome


def cold(urls: Sequence[str], concurrency: int, time_limit: float = 120) -> dict[str, Any]:
    """GET every URL once with ``concurrency`` users; stop early at ``time_limit`` seconds."""
    return asyncio.run(_cold(urls, concurrency, time_limit)).report()


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed (make bench installs it: apt-get install -y wrk)")
    return path


HOT_SET_SCRIPT = Path(__file__).with_name("hot_set.lua")

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise RuntimeError(f"wrk printed a latency this parser does not know: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    url: str, connections: int = 32, seconds: float = 5, threads: int = 1, paths_file: str | None = None
) -> dict[str, Any]:
    """Requests/s and latency percentiles for one URL, from ``wrk --latency``.

    With ``paths_file`` (one URL path per line), wrk cycles through those paths on ``url``'s
    host instead of asking for one URL over and over (a hot set, not the one-URL best case).
    """
    argv = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency"]
    if paths_file is not None:
        argv += ["-s", str(HOT_SET_SCRIPT), url, "--", paths_file]
    else:
        argv.append(url)
    output = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps_line = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps_line is None:  # wrk ran but measured nothing (e.g. every connection failed)
        raise RuntimeError(f"wrk reported no Requests/sec for {url}:\n{output[-2000:]}")
    rps = float(rps_line.group(1))
    percentiles = {f"p{p}_ms": _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M)}
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    total = re.search(r"(\d+) requests in", output)
    return {
        "rps": round(rps, 1), "connections": connections, "seconds": seconds, **percentiles,
        "requests": int(total.group(1)) if total else None,
        "non_2xx": int(non_ok.group(1)) if non_ok else 0, "socket_errors": errors.group(1) if errors else None,
    }
