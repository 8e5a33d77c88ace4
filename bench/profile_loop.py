"""`python -m bench.profile_loop [kind] [count]`: what the event loop does for a cold thumbnail, by component.

Needs py-spy (`pip install --target /tmp/py-spy py-spy`; set PY_SPY to its binary). Serves
ours against the bench origin, samples the server's threads (native frames, idle included)
during one cold batch at c=4, and splits the main thread's busy samples by the innermost
frame that names a component (the fetch stack, the store, the render hand-off, the service,
the handler, Starlette/uvicorn). Shares, not milliseconds: pair it with `bench.threads_cpu`.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.context import Context
from bench.nginx import origin
from bench.peers import System, measure
from bench.targets import ours_settings, ours_url, serve_ours_process

# Checked from the leaf outwards; the first component a frame names wins.
COMPONENTS = (
    ("origin fetch (proxy.fetch, proxy.origin_http)", ("OriginFetcher", "OriginConnection", "OriginPool",
                                                       "origin_http.py", "fetch.py", "httpx/", "httpcore/", "h11/")),
    ("store (DiskStore, to_thread hand-off)", ("DiskStore", "to_thread")),
    ("render hand-off (processing pool, futures)", ("ProcessingPool", "wrap_future", "_chain_future",
                                                    "_copy_future_state")),
    ("thumbnail entry and memory tier", ("Thumbnail.", "MemoryTier", "tiers.py")),
    ("service (single-flight, negative cache, admission, metrics)", ("service.py", "singleflight", "negative.py",
                                                                     "admission.py", "prometheus", "metrics.py",
                                                                     "gate.py")),
    ("handler and signed-URL check", ("handlers.py", "urls.py", "verified.py", "hmac")),
    ("Starlette, uvicorn, client limits", ("starlette/", "uvicorn/", "limits.py", "httptools")),
)
IDLE = ("epoll_wait", "uv__io_poll")


def split(raw: Path) -> tuple[int, collections.Counter[str]]:
    shares: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" not in frames[0] or any(marker in stack for marker in IDLE):
            continue
        busy += int(count)
        found = next((name for frame in reversed(frames[1:]) for name, keys in COMPONENTS
                      if any(key in frame for key in keys)), "event loop internals (no Python frame)")
        shares[found] += int(count)
    return busy, shares


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "fal_jpeg"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: pip install --target /tmp/py-spy py-spy; PY_SPY=/tmp/py-spy/bin/py-spy")
    raw = Path(tempfile.mkdtemp()) / "samples.txt"
    ctx = Context(quick=True)
    with origin(ctx.work / "corpus", ctx.work) as origin_:
        host = origin_.base_url.removeprefix("http://")
        with serve_ours_process(ours_settings(ctx.work, "profile", host), ctx.work / "ours" / "profile.log") as (
                base, pid):
            system = System("thumbs", pid, lambda source: ours_url(base, source),
                            cold_header=("x-thumb-tier", "generated"))
            names = [image.name for image in ctx.corpus_of(kind)]
            tag = str(int(time.time()))
            measure(system, origin_, names, 8, 2, f"{tag}-warm")
            env = {**os.environ, "PYTHONPATH": str(Path(spy).parent.parent)}
            sampler = subprocess.Popen([spy, "record", "-p", str(pid), "-o", str(raw), "-f", "raw", "-r", "97",
                                        "--threads", "--native", "--idle"], env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                time.sleep(1)
                cell = measure(system, origin_, names, count, 4, f"{tag}-m")
            finally:
                sampler.send_signal(signal.SIGINT)
                sampler.wait(timeout=60)
    busy, shares = split(raw)
    print(f"{kind}: {cell['cpu_ms_per_thumbnail']} ms CPU per thumbnail; event-loop busy samples {busy}")
    for name, samples in shares.most_common():
        print(f"  {samples * 100 / max(busy, 1):5.1f} %  {name}")


if __name__ == "__main__":
    main()
