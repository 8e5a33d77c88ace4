"""Run the real nginx with the stack's generated config, for tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from thumbs.settings import Settings
from thumbs.stack import remove_edge_temp_dir, write_nginx_config


@contextmanager
def run_nginx(nginx: str, settings: Settings, directory: Path) -> Iterator[str]:
    """nginx on ``settings.port`` in front of ``settings.stack_app_port``; yields the edge URL.

    Ready means nginx answers at all (a 503 from a missing app counts): the app may be down on purpose.
    """
    config = write_nginx_config(settings, directory)
    process = subprocess.Popen(
        [nginx, "-p", str(directory), "-c", str(config), "-g", "daemon off;"], stderr=subprocess.DEVNULL
    )
    base_url = f"http://127.0.0.1:{settings.port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(base_url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("nginx did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)
        remove_edge_temp_dir(settings, directory)
