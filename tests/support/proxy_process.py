"""A proxy in its own OS process (uvicorn --factory), configured only by the THUMBS_* variables given."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.servers import free_port
from tests.support.wait import wait_until_sync
from thumbs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def proxy_process(
    settings: Settings,
    data_dir: Path,
    *,
    factory: str = "tests.proxy.app_factory:create",
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start the proxy, wait until /healthz answers 200; yields its base URL and the process."""
    port = free_port()
    env = {
        **os.environ,
        **settings.as_environment(),
        "THUMBS_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"proxy process exited with {process.returncode}")
        try:
            return httpx.get(base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until_sync(healthy, 30, what="the proxy process to answer /healthz", every=0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
