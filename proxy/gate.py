"""A start gate: the one decision between "a thread starts this job" and "nobody wants it".

A render queued in the pool may be abandoned by its last waiter (every client left) on the
event loop at the moment a pool thread picks it up. The gate decides that race exactly once
under a lock: either the job starts (and is then finished and cached), or it is dropped (and
the thread skips it).
"""

from __future__ import annotations

import threading

_OPEN, _STARTED, _DROPPED = 0, 1, 2


class StartGate:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _OPEN

    def start(self) -> bool:
        """Called by the worker thread before the job: False if the job was dropped."""
        with self._lock:
            if self._state == _OPEN:
                self._state = _STARTED
            return self._state == _STARTED

    def drop(self) -> bool:
        """Called on the loop when the last waiter left: False if the job already started."""
        with self._lock:
            if self._state == _OPEN:
                self._state = _DROPPED
            return self._state == _DROPPED

    @property
    def started(self) -> bool:
        return self._state == _STARTED


class Dropped(Exception):
    """Raised in the worker thread instead of running a job whose gate was dropped."""
