"""`python -m bench.run [--quick] [sections...]`: run the benchmarks, write bench/results/*.json,
then render docs/BENCHMARKS.md and the plots from every results file present.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import time
import traceback
from pathlib import Path
from types import FrameType

import orjson

from bench.context import Context
from bench.machine import describe

SECTIONS = {
    "per_image": "bench.per_image",
    "cold_http": "bench.cold_http",
    "peers": "bench.peers",
    "warm_http": "bench.warm_http",
    "scale": "bench.scale",
    "browser": "bench.browser",
    "api_pages": "bench.api_pages",
}


def _interrupt(signum: int, _: FrameType | None) -> None:
    # SIGTERM (and the --timeout alarm) unwind like Ctrl-C: every `running()` block's finally
    # stops the process group it started.
    raise KeyboardInterrupt(f"signal {signum}")


def write_result(path: Path, payload: dict[str, object]) -> None:
    """One line per top-level key: compact, yet a diff shows which part of a result moved."""
    options = orjson.OPT_NON_STR_KEYS
    lines = [f"{orjson.dumps(key).decode()}: {orjson.dumps(value, option=options).decode()}"
             for key, value in payload.items()]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer images and shorter runs (under 3 minutes)")
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], help="default: all")
    parser.add_argument("--timeout", type=int, default=3600, help="stop everything after this many seconds")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGALRM, _interrupt)
    signal.alarm(args.timeout)
    ctx = Context(quick=args.quick)
    ctx.results.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"building the {ctx.size} corpus under {ctx.work / 'corpus'}", flush=True)
    _ = ctx.corpus
    machine = {**describe(), "mode": ctx.size}
    failures = []
    for name in args.sections or list(SECTIONS):
        section_started = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            result = importlib.import_module(SECTIONS[name]).run(ctx)
            status = "ok"
        except Exception as exc:  # one broken section must not lose the others' figures
            traceback.print_exc()
            result, status = {"error": f"{type(exc).__name__}: {exc}"}, "failed"
            failures.append(name)
        payload = {"section": name, "status": status, "machine": machine,
                   "seconds": round(time.monotonic() - section_started, 1), "result": result}
        write_result(ctx.results / f"{name}.json", payload)
        print(f"   {name}: {status} in {payload['seconds']} s", flush=True)
    from bench.report import render

    render(ctx.results)
    print(f"done in {time.monotonic() - started:.0f} s; failed sections: {failures or 'none'}")


if __name__ == "__main__":
    main()
