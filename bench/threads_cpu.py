"""`python -m bench.threads_cpu [kind] [count] [REV]`: where a cold thumbnail's CPU goes, thread by thread.

Serves ours (as `bench.peers` does) against the bench origin, runs one cold batch at c=4,
and splits the server's CPU per thumbnail by thread from ``/proc/<pid>/task/*/stat``: the
event loop (the main thread), the other Python threads (the render pool, ``to_thread``
workers) and libvips' own worker threads, with each group's voluntary context switches per
thumbnail (``/proc/<pid>/task/*/status``: every time a thread blocked and was woken).
REV serves that revision's code instead of the working tree (``bench.targets.export_revision``).
"""

from __future__ import annotations

import collections
import os
import sys
import time
from pathlib import Path

from bench.context import Context
from bench.nginx import origin
from bench.peers import System, measure
from bench.proctree import TICK
from bench.targets import export_revision, ours_settings, ours_url, serve_ours_process


def _per_thread(pid: int, file: str) -> dict[tuple[str, str], str]:
    """(tid, name) -> the text of ``/proc/<pid>/task/<tid>/<file>`` for every live thread of ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/{file}").read_text()
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        out[(tid, name)] = text
    return out


def thread_ticks(pid: int) -> dict[tuple[str, str], tuple[int, int]]:
    """(tid, name) -> (user, system) clock ticks of every thread of ``pid``."""
    ticks = {}
    for key, stat in _per_thread(pid, "stat").items():
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[key] = (int(fields[11]), int(fields[12]))
    return ticks


def thread_switches(pid: int) -> dict[tuple[str, str], int]:
    """(tid, name) -> voluntary context switches of every thread of ``pid``: each time a thread
    blocked (a lock, the GIL, a semaphore, a read) and was woken later."""
    return {key: int(status.split("voluntary_ctxt_switches:")[1].split()[0])
            for key, status in _per_thread(pid, "status").items()}


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "fal_jpeg"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    ctx = Context(quick=True)
    root = export_revision(sys.argv[3], ctx.work) if len(sys.argv) > 3 else None
    with origin(ctx.work / "corpus", ctx.work) as origin_:
        host = origin_.base_url.removeprefix("http://")
        settings = ours_settings(ctx.work, "threads", host)
        with serve_ours_process(settings, ctx.work / "ours" / "threads.log", root=root) as (base, pid):
            system = System("thumbs", pid, lambda source: ours_url(base, source),
                            cold_header=("x-thumb-tier", "generated"))
            names = [image.name for image in ctx.corpus_of(kind)]
            tag = str(int(time.time()))
            measure(system, origin_, names, 8, 2, f"{tag}-warm")
            before, switches_before = thread_ticks(pid), thread_switches(pid)
            cell = measure(system, origin_, names, count, 4, f"{tag}-m")
            after, switches_after = thread_ticks(pid), thread_switches(pid)
    groups: collections.Counter[str] = collections.Counter()
    system_time: collections.Counter[str] = collections.Counter()
    switches: collections.Counter[str] = collections.Counter()
    for (tid, name), (user, sys_) in after.items():
        old_user, old_sys = before.get((tid, name), (0, 0))
        group = "event loop (main thread)" if tid == str(pid) else (
            "libvips workers" if name.startswith("libvips") else "other Python threads (render pool, to_thread)")
        groups[group] += user - old_user + sys_ - old_sys
        system_time[group] += sys_ - old_sys
        # Threads that exited during the batch are missing from both counts.
        switches[group] += switches_after.get((tid, name), 0) - switches_before.get((tid, name), 0)
    print(f"{kind}: {cell['cpu_ms_per_thumbnail']} ms CPU per thumbnail, {cell['thumbnails_per_s']}/s, "
          f"{cell['busy_cores']} cores busy, load {os.getloadavg()[0]:.1f}")
    for group, ticks in groups.most_common():
        print(f"  {group:46s} {ticks / TICK * 1000 / cell['ok']:.2f} ms "
              f"(system {system_time[group] / TICK * 1000 / cell['ok']:.2f}), "
              f"{switches[group] / cell['ok']:.1f} voluntary context switches")


if __name__ == "__main__":
    main()
