"""Summaries of timing samples: percentiles by linear interpolation, as numpy computes them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples, dtype=float), q)) if len(samples) else float("nan")


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p95, p99 and mean of samples given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "median_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(float(np.mean(ms)), 3) if ms else float("nan"),
        "n": len(ms),
    }


def cdf_points(seconds: Sequence[float], points: int = 50) -> list[list[float]]:
    """A latency CDF as [ms, fraction] pairs, small enough to keep in the results JSON."""
    if not seconds:
        return []
    qs = np.linspace(0, 100, points)
    values = np.percentile(np.asarray(seconds, dtype=float) * 1000, qs)
    return [[round(float(v), 3), round(float(q) / 100, 3)] for v, q in zip(values, qs, strict=True)]
