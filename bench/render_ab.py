"""`python -m bench.render_ab REV [ROUNDS]`: render() CPU of proxy/pipeline.py at REV against the working tree.

Both versions of the module are loaded side by side (REV's from `git show`), then rendered
interleaved (old, new, new, old, ...) over the bench corpus; the figure is CPU ms per
thumbnail (``time.process_time``: every libvips thread), median of rounds, and whether the
outputs (bytes, sizes, placeholder colour) are the same.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from bench.context import ROOT, Context
from proxy import pipeline as current
from proxy.variants import THUMB

KINDS = ("fal_jpeg", "photo4k_jpeg", "ai1024_png")


def load_revision(revision: str) -> ModuleType:
    source = subprocess.run(["git", "show", f"{revision}:proxy/pipeline.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "pipeline_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pipeline_at_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def cpu_ms(module: ModuleType, data: bytes, repeats: int) -> float:
    started = time.process_time()
    for _ in range(repeats):
        module.render(data, THUMB, 50_000_000)
    return (time.process_time() - started) / repeats * 1000


def outcome(module: ModuleType, data: bytes) -> tuple[object, ...]:
    """What a render gives, comparable across the two modules' ``Rendered`` classes."""
    return dataclasses.astuple(module.render(data, THUMB, 50_000_000))


def main() -> None:
    revision = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    old = load_revision(revision)
    current.configure_libvips(1)
    ctx = Context(quick=True)
    for kind in KINDS:
        data = [image.path.read_bytes() for image in ctx.corpus_of(kind)]
        same = all(outcome(old, d) == outcome(current, d) for d in data)
        repeats = 10 if kind == "fal_jpeg" else 3
        samples: dict[str, list[float]] = {"old": [], "new": []}
        for round_ in range(rounds):
            # Alternate who goes first: a fixed order carries warm-up and frequency drift one way.
            pair = (("old", old), ("new", current))
            for label, module in pair if round_ % 2 == 0 else pair[::-1]:
                samples[label].append(statistics.mean(cpu_ms(module, d, repeats) for d in data))
        old_ms, new_ms = statistics.median(samples["old"]), statistics.median(samples["new"])
        print(f"{kind:13s} {revision}: {old_ms:6.2f} ms  working tree: {new_ms:6.2f} ms  "
              f"({new_ms - old_ms:+.2f} ms, {new_ms / old_ms:.3f}x)  same output: {same}", flush=True)


if __name__ == "__main__":
    main()
