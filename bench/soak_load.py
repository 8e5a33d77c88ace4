"""A bounded load run against `thumbs stack` on loopback (``make soak``; not part of `make test`).

Sets up a corpus of a few thousand generated JPEGs behind a plain static origin
(``python -m http.server``), starts ``thumbs stack`` (nginx edge + 2 uvicorn workers, SQLite,
the shared Redis under a private prefix), warms a hot set through the edge, then drives wrk for
a fixed duration: mostly hot paths (edge hits) plus a share of never-seen sources (misses that
go through the proxy: fetch, decode, encode). Reports throughput, p50/p99, statuses, edge
cache results and the RSS of the proxy processes after warm-up and at the end, as JSON.

    .venv/bin/python -m bench.soak_load --seconds 60 --sources 3000 --out bench/results/soak_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pyvips

from proxy.urls import thumbnail_path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "soak-secret"

WRK_SCRIPT = r"""
local threads = {}
local next_id = 1
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  hot, cold = {}, {}
  for line in io.lines(args[1]) do hot[#hot + 1] = line end
  for line in io.lines(args[2]) do cold[#cold + 1] = line end
  miss_share = tonumber(args[3])
  nthreads = tonumber(args[4])
  cold_next = id
  statuses, cache = {}, {}
  math.randomseed(id * 7919)
end
function request()
  local path
  if cold_next <= #cold and math.random() < miss_share then
    path = cold[cold_next]
    cold_next = cold_next + nthreads
  else
    path = hot[math.random(#hot)]
  end
  return wrk.format("GET", path)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local c = headers["X-Cache-Status"] or headers["x-cache-status"] or "none"
  cache[c] = (cache[c] or 0) + 1
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses")) do io.write(string.format("STATUS %s %d\n", k, v)) end
    for k, v in pairs(thread:get("cache")) do io.write(string.format("CACHE %s %d\n", k, v)) end
  end
  io.write(string.format("REQUESTS %d\n", summary.requests))
  io.write(string.format("DURATION_US %d\n", summary.duration))
  io.write(string.format("SOCKET_ERRORS %d %d %d %d\n", summary.errors.connect, summary.errors.read,
                         summary.errors.write, summary.errors.timeout))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("LATENCY_P%s_US %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("LATENCY_MAX_US %d\n", latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_corpus(directory: Path, count: int) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"src-{index:05d}.jpg"
        path = directory / name
        if not path.exists():
            width, height = 320 + (index % 7) * 40, 240 + (index % 5) * 30
            xyz = pyvips.Image.xyz(width, height)
            red = (xyz[0] * 255 / width).cast("uchar")
            green = (xyz[1] * 255 / height).cast("uchar")
            blue = ((xyz[0] + xyz[1] + index) % 256).cast("uchar")
            image = red.bandjoin([green, blue]).copy(interpretation="srgb")
            partial = path.with_suffix(".part")
            partial.write_bytes(image.jpegsave_buffer(Q=85))
            partial.replace(path)
        names.append(name)
    return names


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def proxy_rss_mb(stack_pid: int) -> dict[str, float]:
    """RSS of the `thumbs serve` process tree (the proxy + API workers), not nginx or the warm worker."""
    rss: dict[str, float] = {}
    for pid in descendants(stack_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "nginx" in cmdline or " worker" in cmdline or "thumbs.cli stack" in cmdline:
            continue
        if "python" not in cmdline:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match:
            rss[f"{pid}"] = round(int(match.group(1)) / 1024, 1)
    return rss


def run_wrk(base: str, hot: Path, cold: Path, seconds: int, connections: int, threads: int,
            miss_share: float, script: Path) -> dict[str, object]:
    done = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(script), base, "--", str(hot), str(cold), str(miss_share), str(threads)],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    statuses: dict[str, int] = {}
    cache: dict[str, int] = {}
    # The script's scalar counters (requests, duration_us, latency_*), and its socket errors by kind.
    counters: dict[str, int] = {}
    socket_error_kinds: dict[str, int] | None = None
    for line in done.stdout.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "STATUS":
            statuses[parts[1]] = statuses.get(parts[1], 0) + int(parts[2])
        elif parts[0] == "CACHE":
            cache[parts[1]] = cache.get(parts[1], 0) + int(parts[2])
        elif parts[0] == "SOCKET_ERRORS":
            socket_error_kinds = dict(zip(["connect", "read", "write", "timeout"], map(int, parts[1:]),
                                          strict=True))
        elif parts[0] in ("REQUESTS", "DURATION_US") or parts[0].startswith("LATENCY_"):
            counters[parts[0].lower()] = int(parts[1])
    requests = counters.get("requests", 0)
    seconds_run = counters.get("duration_us", 1) / 1e6
    server_errors = sum(count for status, count in statuses.items() if status.startswith("5"))
    socket_errors = sum((socket_error_kinds or {}).values())
    return {
        "requests": requests, "seconds": round(seconds_run, 2),
        "throughput_rps": round(requests / seconds_run, 1) if seconds_run else 0,
        "latency_ms": {key.removeprefix("latency_").removesuffix("_us"): round(value / 1000, 2)
                       for key, value in counters.items() if key.startswith("latency_")},
        "statuses": statuses, "edge_cache": cache,
        "errors_non_4xx": server_errors + socket_errors, "socket_errors": socket_error_kinds,
        "wrk_stderr": done.stderr.strip()[-500:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--sources", type=int, default=3000)
    parser.add_argument("--hot", type=int, default=600, help="sources warmed first (edge hits)")
    parser.add_argument("--miss-share", type=float, default=0.03, help="share of requests to never-seen sources")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--corpus", type=Path, default=ROOT / "var" / "soak" / "origin")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak_load.json")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")

    names = make_corpus(args.corpus, args.sources)
    origin_port, edge_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="thumbs-soak-"))
    prefix = f"soak-{uuid.uuid4().hex[:8]}:"
    env = {**os.environ, "THUMBS_DATA_DIR": str(work / "data"), "THUMBS_SECRET": SECRET,
           "THUMBS_ALLOWED_SOURCES": f"127.0.0.1:{origin_port}", "THUMBS_ALLOW_PRIVATE_SOURCES": "true",
           "THUMBS_PORT": str(edge_port), "THUMBS_HOST": "127.0.0.1", "THUMBS_WORKERS": str(args.workers),
           "THUMBS_REDIS_URL": args.redis_url, "THUMBS_REDIS_PREFIX": prefix,
           "THUMBS_PUBLIC_BASE_URL": f"http://127.0.0.1:{edge_port}", "THUMBS_EDGE_CACHE_SIZE": "2g",
           "THUMBS_ADMIN_TOKEN": "soak-admin", "THUMBS_WARM_TOKEN": "soak-warm", "THUMBS_INGEST_TOKEN": "soak-ingest"}
    origin = subprocess.Popen([sys.executable, "-m", "http.server", str(origin_port), "--bind", "127.0.0.1",
                               "--directory", str(args.corpus)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack = subprocess.Popen([sys.executable, "-m", "thumbs.cli", "stack"], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{edge_port}"
    try:
        wait_for(base + "/healthz", 90)
        paths = [thumbnail_path(f"http://127.0.0.1:{origin_port}/{name}", SECRET) for name in names]
        hot, cold = paths[: args.hot], paths[args.hot :]
        warm_statuses: dict[int, int] = {}
        with httpx.Client(base_url=base, timeout=30) as client:
            for path in hot:
                status = client.get(path).status_code
                warm_statuses[status] = warm_statuses.get(status, 0) + 1
        (work / "hot.txt").write_text("\n".join(hot) + "\n")
        (work / "cold.txt").write_text("\n".join(cold) + "\n")
        script = work / "mix.lua"
        script.write_text(WRK_SCRIPT)
        time.sleep(2)
        rss_start = proxy_rss_mb(stack.pid)
        result = run_wrk(base, work / "hot.txt", work / "cold.txt", args.seconds, args.connections, 2,
                         args.miss_share, script)
        time.sleep(1)
        rss_end = proxy_rss_mb(stack.pid)
        health = httpx.get(base + "/healthz", timeout=10).json()
    finally:
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stack.kill()
        origin.terminate()
        origin.wait(timeout=10)
        _clean_redis(args.redis_url, prefix)
        shutil.rmtree(work, ignore_errors=True)
    start_total, end_total = sum(rss_start.values()), sum(rss_end.values())
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"nproc": os.cpu_count(), "cpu": _cpu_model()},
        "setup": {"sources": args.sources, "hot": args.hot, "miss_share": args.miss_share,
                  "connections": args.connections, "app_workers": args.workers, "seconds": args.seconds,
                  "warm_statuses": warm_statuses},
        "load": result,
        "proxy_rss_mb": {"start": rss_start, "end": rss_end, "start_total": round(start_total, 1),
                         "end_total": round(end_total, 1),
                         "growth_pct": round((end_total - start_total) / start_total * 100, 1)
                         if start_total else None},
        "health_after": health.get("status"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if result["errors_non_4xx"]:
        sys.exit(1)


def _cpu_model() -> str:
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        return "unknown"
    return match.group(1).strip() if match else "unknown"


def _clean_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


if __name__ == "__main__":
    main()
