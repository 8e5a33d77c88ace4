"""Memory of this process over a window: VmRSS sampled in a thread, not the lifetime peak.

``getrusage().ru_maxrss`` and /proc's VmHWM are the peak of the whole process life, so a
test run after a memory-hungry one can neither fail (the peak is already higher) nor be
compared with its own baseline. Sampling VmRSS while the code under test runs measures the
growth that window caused.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

STATUS = Path("/proc/self/status")


def rss_mb() -> float:
    """Resident memory now, in MiB (VmRSS)."""
    for line in STATUS.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


class RssWindow:
    """``with RssWindow() as window: ...``; then ``window.growth_mb`` = highest sample minus the baseline."""

    def __init__(self, every: float = 0.005) -> None:
        self.every = every
        self.baseline_mb = 0.0
        self.peak_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-window", daemon=True)

    @property
    def growth_mb(self) -> float:
        return max(0.0, self.peak_mb - self.baseline_mb)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, rss_mb())
            self.samples += 1
            self._stop.wait(self.every)

    def __enter__(self) -> RssWindow:
        self.baseline_mb = self.peak_mb = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak_mb = max(self.peak_mb, rss_mb())
