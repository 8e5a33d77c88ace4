"""`python -m bench.run [--quick] [sections...]`: run the benchmarks, write bench/results/*.json,
then render docs/BENCHMARKS.md and the plots from every results file present.
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback

import orjson

from bench.context import Context
from bench.machine import describe

SECTIONS = {
    "per_image": "bench.per_image",
    "cold_http": "bench.cold_http",
    "warm_http": "bench.warm_http",
    "scale": "bench.scale",
    "browser": "bench.browser",
    "api_pages": "bench.api_pages",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer images and shorter runs (under 3 minutes)")
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], help="default: all")
    args = parser.parse_args()
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
        options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        (ctx.results / f"{name}.json").write_bytes(orjson.dumps(payload, option=options))
        print(f"   {name}: {status} in {payload['seconds']} s", flush=True)
    from bench.report import render

    render(ctx.results)
    print(f"done in {time.monotonic() - started:.0f} s; failed sections: {failures or 'none'}")


if __name__ == "__main__":
    main()
