"""Section 6: the library API at 1,000,000 PostgreSQL rows, cursor vs offset at several depths.

The API's engineer owns the measurement (bench/api_pages.py); this section calls its
``run(quick)`` when it exists and says so when it does not, so nothing is measured twice.
"""

from __future__ import annotations

import importlib.util

from bench.context import Context


def run(ctx: Context) -> dict[str, object]:
    if importlib.util.find_spec("bench.api_pages") is None:
        raise RuntimeError("bench/api_pages.py (the API engineer's 1M-row harness) does not exist yet")
    from bench import api_pages  # type: ignore[attr-defined]

    return api_pages.run(ctx)  # type: ignore[no-any-return]
