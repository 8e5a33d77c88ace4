"""`python -m bench.instructions [kind] [count]`: user-space instructions per cold thumbnail, server by server.

CPU seconds on this shared 2-core machine move by a third from one minute to the next; the
instructions a process executes do not. Each server (ours as `thumbs serve` runs it, and
thumbor as `bench.peers` runs it) is started under valgrind's callgrind, warmed with a few cold
thumbnails, its counters zeroed (``callgrind_control -z``), sent ``count`` cold thumbnails one
at a time, then dumped (``callgrind_control -d``). Every thread counts; the kernel does not
(system time is not here: pair this with ``bench.threads_cpu``).

The same sources rendered in-process give each server's floor: our ``render()`` and the
Pillow draft + thumbnail pipeline thumbor runs (``bench.per_image.pillow``), counted as the
difference of two runs (``count`` and ``3 * count`` renders) so start-up cancels out. Server
minus floor is the work around the render: the number #14's "overhead under 1 ms" is about.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.context import ROOT, Context
from bench.machine import describe
from bench.nginx import Origin, origin
from bench.peers import System, measure
from bench.run import write_result
from bench.services import PYTHON
from bench.targets import (
    ours_settings,
    ours_url,
    serve_ours_process,
    serve_thumbor_process,
    thumbor_available,
    thumbor_url,
)

VALGRIND = "valgrind"
WARM = 4
# Under valgrind a Python server takes tens of seconds to import and bind.
READY_SECONDS = 300
_TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def callgrind(out_dir: Path) -> list[str]:
    return [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={out_dir}/callgrind.%p", "--dump-instr=no"]


def counted(system: System, origin_: Origin, names: list[str], count: int, out_dir: Path, tag: str) -> dict:
    """Instructions of ``system`` over ``count`` cold thumbnails at c=1, after a warm-up."""
    measure(system, origin_, names, WARM, 1, f"{tag}-warm")
    subprocess.run(["callgrind_control", "-z", str(system.pid)], check=True, capture_output=True, timeout=120)
    cell = measure(system, origin_, names, count, 1, f"{tag}-m")
    subprocess.run(["callgrind_control", "-d", str(system.pid)], check=True, capture_output=True, timeout=120)
    dumps = sorted(out_dir.glob(f"callgrind.{system.pid}.*"), key=lambda path: path.stat().st_mtime)
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {system.name} in {out_dir}")
    match = _TOTAL.search(dumps[-1].read_text(errors="replace"))
    if match is None:
        raise RuntimeError(f"no instruction total in {dumps[-1]}")
    if cell["ok"] != count or cell["cold_confirmed"] != count or cell["origin_requests"] != count:
        raise RuntimeError(f"{system.name}: not {count} cold thumbnails: {cell}")
    return {"instructions_per_thumbnail": int(match.group(1)) // count, "thumbnails": count,
            "origin_requests": cell["origin_requests"], "bytes_median": cell["bytes_median"], "profile": str(dumps[-1])}


@contextlib.contextmanager
def ours(ctx: Context, host: str, out_dir: Path) -> Iterator[System]:
    settings = ours_settings(ctx.work, "instructions", host)
    with serve_ours_process(settings, ctx.work / "ours" / "instructions.log", wrapper=callgrind(out_dir),
                            ready_seconds=READY_SECONDS) as (base, pid):
        yield System("thumbs", pid, lambda source: ours_url(base, source), cold_header=("x-thumb-tier", "generated"))


@contextlib.contextmanager
def thumbor(ctx: Context, out_dir: Path) -> Iterator[System]:
    # The thumbor script's shebang names its venv's python: valgrind follows it.
    with serve_thumbor_process(ctx.work, 1, wrapper=callgrind(out_dir), ready_seconds=READY_SECONDS) as (base, pid):
        yield System("thumbor", pid, lambda source: thumbor_url(base, source))


# Run under valgrind by floor(): render every corpus file of one kind N times in-process.
_FLOOR_SCRIPT = """
import sys
from pathlib import Path
method, n = sys.argv[1], int(sys.argv[2])
files = [Path(p).read_bytes() for p in sys.argv[3:]]
if method == "ours":
    from proxy.pipeline import configure_libvips, render
    from proxy.variants import THUMB
    configure_libvips(1)
    run = lambda data: render(data, THUMB, 50_000_000)
else:
    from bench.per_image import pillow as run
run(files[0])
for i in range(n):
    run(files[i % len(files)])
"""


def floor(method: str, python: str, files: list[Path], count: int) -> int:
    """Instructions per in-process render: (3 * count renders - count renders) / (2 * count)."""

    def total(n: int) -> int:
        result = subprocess.run(
            [VALGRIND, "--tool=callgrind", "--callgrind-out-file=/dev/null", python, "-c", _FLOOR_SCRIPT, method,
             str(n), *map(str, files)],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent, timeout=1800)
        found = re.search(r"Collected : (\d+)", result.stderr)
        if found is None:
            raise RuntimeError(f"no callgrind total: {result.stderr[-500:]}")
        return int(found.group(1))

    return (total(3 * count) - total(count)) // (2 * count)


def measure_kind(ctx: Context, kind: str, count: int, out_dir: Path) -> dict[str, dict]:
    corpus = ctx.corpus_of(kind)
    names = [image.name for image in corpus]
    servers: list[tuple[str, Callable[[str], contextlib.AbstractContextManager[System]], str]] = [
        ("thumbs", lambda host: ours(ctx, host, out_dir), "ours")]
    if thumbor_available():
        servers.append(("thumbor", lambda host: thumbor(ctx, out_dir), "pillow"))
    rows: dict[str, dict] = {}
    tag = f"{int(time.time())}-{kind}"
    with origin(ctx.work / "corpus", ctx.work) as origin_:
        host = origin_.base_url.removeprefix("http://")
        for name, serve, _ in servers:
            with serve(host) as system:
                rows[name] = counted(system, origin_, names, count, out_dir, f"{tag}-{name}")
    for name, _, method in servers:
        # Pillow is the same build in thumbor's venv and ours (the same instructions per render, checked).
        rows[name]["floor_method"] = method
        rows[name]["floor_instructions"] = floor(method, PYTHON, [image.path for image in corpus], count)
        rows[name]["around_render"] = rows[name]["instructions_per_thumbnail"] - rows[name]["floor_instructions"]
    return rows


def main() -> None:
    kinds = sys.argv[1].split(",") if len(sys.argv) > 1 else ["fal_jpeg"]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    if shutil.which(VALGRIND) is None:
        raise SystemExit("valgrind not found (apt-get install valgrind)")
    ctx = Context(quick=True)
    unknown = [kind for kind in kinds if not ctx.corpus_of(kind)]
    if unknown or count < 1:
        known = sorted({image.kind for image in ctx.corpus})
        raise SystemExit(f"usage: python -m bench.instructions KIND[,KIND...] [COUNT >= 1]; kinds: {', '.join(known)}"
                         + (f" (not one: {', '.join(unknown)})" if unknown else ""))
    out_dir = Path(tempfile.mkdtemp(prefix="instructions-"))
    measured: dict[str, dict[str, dict]] = {}
    result: dict[str, object] = {"count": count, "concurrency": 1, "kinds": measured,
                                 "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                 "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                                          text=True, cwd=ROOT).stdout.strip()}
    for kind in kinds:
        rows = measured[kind] = measure_kind(ctx, kind, count, out_dir)
        for name, row in rows.items():
            print(f"{kind:13s} {name:8s} {row['instructions_per_thumbnail'] / 1e6:7.1f} M instructions per cold "
                  f"thumbnail; in-process {row['floor_method']} {row['floor_instructions'] / 1e6:6.1f} M; "
                  f"around it {row['around_render'] / 1e6:6.1f} M", flush=True)
    if os.environ.get("BENCH_KEEP_PROFILES") is None:
        shutil.rmtree(out_dir, ignore_errors=True)
    if os.environ.get("BENCH_SAVE"):  # bench/results/instructions.json, rendered by bench.report
        write_result(ROOT / "bench" / "results" / "instructions.json",
                     {"section": "instructions", "status": "ok", "machine": {**describe(), "mode": "quick"},
                      "result": result})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
