"""Long-running product processes for tests: started with a log file, awaited, always stopped.

Every process gets its own session, so stopping it stops what it started too (uvicorn's
workers, the stack's nginx); a test that fails half-way leaves nothing listening.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, characters: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM the process group, then SIGKILL what is left; the exit code of the leader."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(10)
        # Children that outlived the leader (a worker stuck in shutdown) go too.
        _signal_group(self.process, signal.SIGKILL)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, not a shutdown."""
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait(10)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start(name: str, command: Sequence[str], environment: dict[str, str], log_dir: Path,
          cwd: Path | None = None) -> Running:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            list(command), env=environment, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return Running(name, process, log)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               running: Sequence[Running] = ()) -> None:
    """Poll ``predicate`` until true; fail early with the log of a process that died."""
    deadline = time.monotonic() + timeout
    while True:
        for item in running:
            if not item.alive():
                raise AssertionError(f"{item.name} exited with {item.process.returncode} while waiting for "
                                     f"{what}:\n{item.tail()}")
        if predicate():
            return
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {item.name}:\n{item.tail(1500)}" for item in running)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(0.1)


def answers(url: str, status: int = 200) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == status
        except httpx.HTTPError:
            return False

    return check


@contextmanager
def stopping() -> Iterator[list[Running]]:
    """Collect started processes; all are stopped on exit, in reverse order, whatever happened."""
    started: list[Running] = []
    with ExitStack() as stack:
        stack.callback(lambda: [item.stop() for item in reversed(started)])
        yield started
