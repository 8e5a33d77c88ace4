"""Section 5: the picker vs a naive grid of the 1,000 full originals, in headless Chromium.

Needs the composed product (picker + library API) to run; until it imports, this section
records why it could not be measured instead of inventing figures.
"""

from __future__ import annotations

from bench.context import Context


def run(ctx: Context) -> dict[str, object]:
    try:
        import thumbs.app  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"the composed app (picker + library API) does not import yet: {exc}") from exc
    raise RuntimeError("the browser harness (naive grid page, Chromium script) is not written yet")
