"""The servers under test: ours (`thumbs serve`, the product as deployed) and thumbor 7.8.

thumbor runs from its own venv (bench/.venv-thumbor, made by `make bench`), configured for
the same job: fit in 200x200, JPEG quality 65, no storage and no result storage (every
request is a miss), the PIL engine with its default JPEG draft mode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from bench.asgi import COMPOSED, entry_point
from bench.context import ROOT
from bench.services import PYTHON, free_port, running
from proxy.urls import thumbnail_url
from thumbs.settings import Settings

THUMBOR_VENV = ROOT / "bench" / ".venv-thumbor"
THUMBOR = THUMBOR_VENV / "bin" / "thumbor"
SECRET = "bench-secret-not-for-production"
THUMBOR_CONFIG = """\
LOADER = 'thumbor.loaders.http_loader'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = 'thumbor.result_storages.no_storage'
ENGINE = 'thumbor.engines.pil'
ALLOW_UNSAFE_URL = True
QUALITY = {quality}
PROGRESSIVE_JPEG = False
PRESERVE_EXIF_INFO = False
AUTO_WEBP = False
RESPECT_ORIENTATION = True
HTTP_LOADER_CONNECT_TIMEOUT = 5
HTTP_LOADER_REQUEST_TIMEOUT = 30
MAX_SOURCE_SIZE = 0
"""


def ours_settings(work: Path, name: str, origin_host: str, **overrides: object) -> Settings:
    """Settings for one of our servers with a fresh data dir (empty disk store)."""
    data_dir = work / "ours" / name
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    port = int(overrides.pop("port", 0)) or free_port()  # type: ignore[call-overload]
    return Settings(
        data_dir=data_dir, host="127.0.0.1", port=port, secret=SECRET, admin_token="bench-admin",
        warm_token="bench-warm", ingest_token="bench-ingest", allowed_sources=[origin_host], allow_private_sources=True,
        warm_consumer=False, _env_file=None, **overrides,  # type: ignore[call-arg]
    )


@contextlib.contextmanager
def serve_ours(settings: Settings, log: Path, entry: str | None = None) -> Iterator[str]:
    """Our app under uvicorn as `thumbs serve` runs it (uvloop, httptools, no access log)."""
    entry = entry or entry_point()
    env = settings.as_environment()
    if entry == COMPOSED:
        subprocess.run([PYTHON, "-m", "thumbs.cli", "migrate"], env={**os.environ, **env}, cwd=ROOT, check=True,
                       capture_output=True)
    argv = [PYTHON, "-m", "uvicorn", "--factory", entry, "--host", settings.host, "--port", str(settings.port),
            "--workers", str(settings.workers), "--no-access-log", "--log-level", "warning", "--proxy-headers",
            "--no-server-header"]
    base = f"http://{settings.host}:{settings.port}"
    with running(argv, log, f"{base}/healthz", env=env):
        yield base


def ours_url(base: str, source: str) -> str:
    return thumbnail_url(source, SECRET, base)


def thumbor_available() -> bool:
    return THUMBOR.exists()


def thumbor_version() -> str:
    try:
        return subprocess.run([str(THUMBOR), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unavailable"


@contextlib.contextmanager
def serve_thumbor(work: Path, processes: int, quality: int = 65) -> Iterator[str]:
    directory = work / "thumbor"
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "thumbor.conf"
    config.write_text(THUMBOR_CONFIG.format(quality=quality))
    port = free_port()
    argv = [str(THUMBOR), "-i", "127.0.0.1", "-p", str(port), "-c", str(config), "-l", "warning",
            "--processes", str(processes)]
    with running(argv, directory / f"thumbor-{port}.log", f"http://127.0.0.1:{port}/healthcheck"):
        yield f"http://127.0.0.1:{port}"


def thumbor_url(base: str, source: str, box: int = 200) -> str:
    return f"{base}/unsafe/fit-in/{box}x{box}/filters:format(jpeg)/{quote(source, safe='')}"
