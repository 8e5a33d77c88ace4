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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypedDict, Unpack
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


class OursOverrides(TypedDict, total=False):
    """The Settings fields a benchmark sets on top of :func:`ours_settings`' defaults (add as needed)."""

    workers: int
    memory_cache_bytes: int
    redis_url: str | None
    redis_prefix: str


def ours_settings(
    work: Path, name: str, origin_host: str, *, port: int = 0, **overrides: Unpack[OursOverrides]
) -> Settings:
    """Settings for one of our servers with a fresh data dir (empty disk store); port 0: a free one."""
    data_dir = work / "ours" / name
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    port = port or free_port()
    return Settings(
        data_dir=data_dir, host="127.0.0.1", port=port, secret=SECRET, admin_token="bench-admin",
        warm_token="bench-warm", ingest_token="bench-ingest", allowed_sources=[origin_host], allow_private_sources=True,
        warm_consumer=False, _env_file=None, **overrides,
    )


@contextlib.contextmanager
def serve_ours(settings: Settings, log: Path, entry: str | None = None) -> Iterator[str]:
    """Our app under uvicorn as `thumbs serve` runs it (uvloop, httptools, no access log)."""
    with serve_ours_process(settings, log, entry) as (base, _):
        yield base


@contextlib.contextmanager
def serve_ours_process(
    settings: Settings, log: Path, entry: str | None = None, root: Path | None = None,
    wrapper: Sequence[str] = (), ready_seconds: float = 60,
) -> Iterator[tuple[str, int]]:
    """:func:`serve_ours`, also giving the server's pid (the root of its process tree).

    ``root``: run the code of another tree (see :func:`export_revision`) with this venv.
    ``wrapper``: a command the server runs under (valgrind, for ``bench.instructions``).
    """
    entry = entry or entry_point()
    env = settings.as_environment()
    if entry == COMPOSED:
        subprocess.run([PYTHON, "-m", "thumbs.cli", "migrate"], env={**os.environ, **env}, cwd=ROOT, check=True,
                       capture_output=True)
    argv = [*wrapper, PYTHON, "-m", "uvicorn", "--factory", entry, "--host", settings.host,
            "--port", str(settings.port), "--workers", str(settings.workers), "--no-access-log",
            "--log-level", "warning", "--proxy-headers", "--no-server-header"]
    base = f"http://{settings.host}:{settings.port}"
    with running(argv, log, f"{base}/healthz", env=env, ready_seconds=ready_seconds, cwd=root) as process:
        yield base, process.pid


def export_revision(revision: str, work: Path) -> Path:
    """The Python packages of ``revision`` in a scratch directory, to serve a before/after pair.

    ``python -m uvicorn`` puts its working directory first on sys.path, ahead of the
    editable install's finder, so a server started there imports that tree's code.
    """
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    target = work / f"revision-{commit}"
    if not (target / "proxy").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit, "proxy", "thumbs", "library_api", "httpkit"], cwd=ROOT,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


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
    with serve_thumbor_process(work, processes, quality) as (base, _):
        yield base


@contextlib.contextmanager
def serve_thumbor_process(
    work: Path, processes: int, quality: int = 65, engine_threads: int = 0, wrapper: Sequence[str] = (),
    ready_seconds: float = 60,
) -> Iterator[tuple[str, int]]:
    """thumbor and its pid; ``engine_threads`` > 0 runs Pillow off the IOLoop in that many threads."""
    directory = work / "thumbor"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / f"thumbor-{port}.conf"
    config.write_text(THUMBOR_CONFIG.format(quality=quality) + f"ENGINE_THREADPOOL_SIZE = {engine_threads}\n")
    argv = [*wrapper, str(THUMBOR), "-i", "127.0.0.1", "-p", str(port), "-c", str(config), "-l", "warning",
            "--processes", str(processes)]
    with running(argv, directory / f"thumbor-{port}.log", f"http://127.0.0.1:{port}/healthcheck",
                 ready_seconds=ready_seconds) as process:
        yield f"http://127.0.0.1:{port}", process.pid


def thumbor_url(base: str, source: str, box: int = 200) -> str:
    return f"{base}/unsafe/fit-in/{box}x{box}/filters:format(jpeg)/{quote(source, safe='')}"


# The Node peers (bench/peers/: package.json + package-lock.json; `make bench` runs npm ci there).
PEERS = ROOT / "bench" / "peers"
NODE_MODULES = PEERS / "node_modules"
NEXT_APP = PEERS / "next-app"
NODE_ENV = {"NEXT_TELEMETRY_DISABLED": "1", "NODE_ENV": "production"}


def node_peers_available() -> bool:
    return shutil.which("node") is not None and (NODE_MODULES / "next").is_dir() and (NODE_MODULES / "ipx").is_dir()


def node_peer_versions() -> dict[str, str]:
    import json

    versions = {}
    for name in ("next", "ipx", "sharp"):
        try:
            versions[name] = json.loads((NODE_MODULES / name / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            versions[name] = "not installed"
    return versions


@contextlib.contextmanager
def serve_next(work: Path) -> Iterator[tuple[str, int]]:
    """`next start` of a minimal app (its build made once), with an empty image cache."""
    if not (NEXT_APP / ".next" / "BUILD_ID").exists():
        subprocess.run(["node", str(NODE_MODULES / "next" / "dist" / "bin" / "next"), "build"], cwd=NEXT_APP,
                       env={**os.environ, **NODE_ENV}, check=True, capture_output=True, timeout=600)
    shutil.rmtree(NEXT_APP / ".next" / "cache" / "images", ignore_errors=True)
    port = free_port()
    argv = ["node", str(NODE_MODULES / "next" / "dist" / "bin" / "next"), "start", "-H", "127.0.0.1", "-p", str(port)]
    with running(argv, work / "next" / f"next-{port}.log", f"http://127.0.0.1:{port}/", env=NODE_ENV,
                 cwd=NEXT_APP) as process:
        yield f"http://127.0.0.1:{port}", process.pid
    shutil.rmtree(NEXT_APP / ".next" / "cache" / "images", ignore_errors=True)


def next_url(base: str, source: str, box: int = 200) -> str:
    return f"{base}/_next/image?url={quote(source, safe='')}&w={box}&q=65"


@contextlib.contextmanager
def serve_ipx(work: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    argv = ["node", str(PEERS / "ipx-server.mjs")]
    with running(argv, work / "ipx" / f"ipx-{port}.log", f"http://127.0.0.1:{port}/", env={"PORT": str(port)},
                 cwd=PEERS) as process:
        yield f"http://127.0.0.1:{port}", process.pid


def ipx_url(base: str, source: str, box: int = 200) -> str:
    return f"{base}/s_{box}x{box},fit_inside,q_65,f_jpeg/{source}"
