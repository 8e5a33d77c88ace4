"""Processes the benchmarks start: each on a free loopback port, logged to a file, stopped by pid.

Every server here is one the harness started itself; stopping signals that process (and,
for uvicorn's multi-worker supervisor, its process group) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from bench.context import ROOT

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceError(RuntimeError):
    pass


def wait_http(url: str, process: subprocess.Popen[bytes], seconds: float = 60, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise ServiceError(f"{process.args!r} exited with {process.returncode}\n{tail}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ServiceError(f"{url} did not answer within {seconds:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # its own group: started with start_new_session
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextlib.contextmanager
def running(
    argv: Sequence[str], log: Path, ready_url: str | None = None, env: Mapping[str, str] | None = None,
    ready_seconds: float = 60, cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in its own session, wait for ``ready_url``, stop it when the block ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        process = subprocess.Popen(
            list(argv), stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            cwd=cwd or ROOT, start_new_session=True,
        )
    try:
        if ready_url:
            wait_http(ready_url, process, ready_seconds, log)
        yield process
    finally:
        stop(process)
