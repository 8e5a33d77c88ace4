"""`python -m bench.server_ab REV [ROUNDS] [COUNT] [KIND]`: cold CPU per thumbnail of the server at REV
against the working tree, served side by side.

Both trees are served as `bench.peers` serves ours (one uvicorn worker, uvloop, httptools) on one
nginx origin; batches of COUNT cold thumbnails at c=4 (``C`` in the environment changes it) go
to each in turn, the order alternating every round. Per thumbnail: the server's whole CPU (process
tree), its event loop (the main thread) and its other Python threads (the render pool and
``to_thread`` workers), from ``/proc``. Medians of rounds and the per-round ratios: a change of a
few per cent only shows as the ratios leaning one way on this shared machine.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from functools import partial

from bench.context import Context
from bench.nginx import origin
from bench.peers import System, measure
from bench.proctree import TICK
from bench.targets import export_revision, ours_settings, ours_url, serve_ours_process
from bench.threads_cpu import thread_ticks


def thread_split(pid: int, before: dict[tuple[str, str], tuple[int, int]]) -> tuple[float, float]:
    """(event loop, other Python threads) CPU seconds of ``pid`` since ``before``."""
    loop = python = 0
    for key, (user, system) in thread_ticks(pid).items():
        old_user, old_system = before.get(key, (0, 0))
        used = user + system - old_user - old_system
        if key[0] == str(pid):
            loop += used
        elif not key[1].startswith("libvips"):
            python += used
    return loop / TICK, python / TICK


def main() -> None:
    revision = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 250
    kind = sys.argv[4] if len(sys.argv) > 4 else "fal_jpeg"
    concurrency = int(os.environ.get("C", "4"))
    ctx = Context(quick=True)
    with origin(ctx.work / "corpus", ctx.work) as origin_, contextlib.ExitStack() as stack:
        host = origin_.base_url.removeprefix("http://")
        systems: dict[str, System] = {}
        for label, root in (("working tree", None), (revision, export_revision(revision, ctx.work))):
            name = "ab-new" if root is None else "ab-old"
            base, pid = stack.enter_context(serve_ours_process(
                ours_settings(ctx.work, name, host), ctx.work / "ours" / f"{name}.log", root=root))
            systems[label] = System(label, pid, partial(ours_url, base),  # bound to this server's base now
                                    cold_header=("x-thumb-tier", "generated"))
        names = [image.name for image in ctx.corpus_of(kind)]
        tag = str(int(time.time()))
        for system in systems.values():  # imports, pools, connections
            measure(system, origin_, names, 12, 2, f"{tag}-warm-{system.pid}")
        samples: dict[str, dict[str, list[float]]] = {
            label: {"cpu": [], "loop": [], "python": [], "rate": []} for label in systems}
        for round_ in range(rounds):
            order = list(systems) if round_ % 2 == 0 else list(systems)[::-1]
            for label in order:
                system = systems[label]
                before = thread_ticks(system.pid)
                cell = measure(system, origin_, names, count, concurrency, f"{tag}-{round_}-{system.pid}")
                if cell["cold_confirmed"] != count:
                    raise SystemExit(f"{label}: {cell['cold_confirmed']} of {count} confirmed cold: {cell}")
                loop, python = thread_split(system.pid, before)
                samples[label]["cpu"].append(cell["cpu_ms_per_thumbnail"])
                samples[label]["loop"].append(loop * 1000 / count)
                samples[label]["python"].append(python * 1000 / count)
                samples[label]["rate"].append(cell["thumbnails_per_s"])
    print(f"{kind}, {rounds} rounds of {count} cold thumbnails at c={concurrency}, load {os.getloadavg()[0]:.1f}")
    for label, values in samples.items():
        print(f"  {label:14s} CPU {statistics.median(values['cpu']):6.2f} ms/thumbnail "
              f"(event loop {statistics.median(values['loop']):.2f}, Python threads "
              f"{statistics.median(values['python']):.2f}), {statistics.median(values['rate']):.1f}/s")
    new, old = (samples[label]["cpu"] for label in systems)
    print(f"  working tree / {revision}: {statistics.median(new) / statistics.median(old):.3f}x of medians, "
          f"per round {', '.join(f'{a / b:.2f}' for a, b in zip(new, old, strict=True))}")


if __name__ == "__main__":
    main()
