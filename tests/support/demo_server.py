"""Start the real product (`thumbs demo`, small profile) as a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    origin_url: str
    data_dir: Path
    images: int
    log: Path


def clean_environment(**extra: str) -> dict[str, str]:
    """The caller's environment without THUMBS_* (tests say exactly what they set)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("THUMBS_")}
    environment.update(extra)
    return environment


@contextmanager
def run_demo_server(data_dir: Path, images: int = 1100, timeout: float = 300) -> Iterator[LiveServer]:
    port, origin_port = free_port(), free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "demo.log"
    environment = clean_environment(
        THUMBS_DATA_DIR=str(data_dir), THUMBS_DEMO_ORIGIN_PORT=str(origin_port), PYTHONUNBUFFERED="1"
    )
    command = [sys.executable, "-m", "thumbs.cli", "demo", "--profile", "small", "--images", str(images),
               "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"thumbs demo exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"thumbs demo not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            try:
                response = httpx.get(f"{base_url}/api/library/images", params={"limit": 1}, timeout=2)
                if response.status_code == 200 and response.json()["total"] >= images:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield LiveServer(base_url, f"http://127.0.0.1:{origin_port}", data_dir, images, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
