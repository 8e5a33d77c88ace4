"""The install operators do, driven through that install only.

The Dockerfile's wheel stage is replayed into a clean build context (its COPY lines), its
`pip wheel` and `pip install` lines run in a fresh venv with no extras, and the product is
then driven through that venv's `thumbs` alone: migrate, serve, ingest, a thumbnail, the
picker page, health, backfill of a legacy table, worker, stack, clean stops. A runtime
dependency that only the dev extras bring in fails here.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, REDIS_URL, require_binary
from tests.support.demo_server import clean_environment
from tests.support.origin import Origin
from tests.support.pg import create_database, drop_database
from tests.support.processes import answers, start, stopping, wait_until
from tests.support.servers import free_port
from thumbs.demo.images import demo_image

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages(dockerfile: str) -> list[list[str]]:
    """Instruction lines per build stage (continuations joined, comments dropped)."""
    joined = dockerfile.replace("\\\n", " ")
    result: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        result[-1].append(line)
    return result


def run_line(stage: list[str], program: str) -> list[str]:
    matches = [line[4:] for line in stage if line.startswith(f"RUN {program} ")]
    assert len(matches) == 1, f"expected one `RUN {program}` line in the stage, found {matches}"
    return shlex.split(matches[0])


def build_context(stage: list[str], context: Path) -> None:
    """Lay out the wheel stage's COPY lines; `--from=frontend` takes the frontend built here."""
    for line in stage:
        if not line.startswith("COPY "):
            continue
        parts = shlex.split(line)[1:]
        from_stage = next((part.split("=", 1)[1] for part in parts if part.startswith("--from=")), None)
        *sources, target = [part for part in parts if not part.startswith("--")]
        for source in sources:
            if from_stage == "frontend":
                source = source.removeprefix("/src/")
            elif from_stage is not None:
                raise AssertionError(f"unexpected COPY --from={from_stage} in the wheel stage")
            source_path = ROOT / source
            target_path = context / target / source_path.name if target.endswith("/") and source_path.is_file() \
                else context / target
            if source_path.is_dir():
                shutil.copytree(source_path, target_path, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source_path, target_path)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with the product installed exactly as the Dockerfile installs it; its bin/."""
    if not (ROOT / "frontend/dist/index.html").is_file():
        pytest.fail("frontend/dist is not built: run `make build` first (make test does)")
    work = tmp_path_factory.mktemp("install")
    wheel_stage, final_stage = stages(DOCKERFILE)[1], stages(DOCKERFILE)[-1]
    context, wheels, venv_dir = work / "context", work / "wheels", work / "venv"
    build_context(wheel_stage, context)
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir)], check=True)
    python = str(venv_dir / "bin" / "python")
    environment = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}

    def pip(argv: list[str], cwd: Path) -> None:
        assert argv[0] == "pip"
        argv = [python, "-m", "pip", *(arg.replace("/wheels", str(wheels)) for arg in argv[1:])]
        argv = [expanded for arg in argv for expanded in (sorted(glob.glob(arg)) if "*" in arg else [arg])]
        result = subprocess.run(argv, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    pip(run_line(wheel_stage, "pip"), context)
    pip(run_line(final_stage, "pip"), work)
    # Nothing from the dev extras leaked in: the product must not need it.
    for module in ("pytest", "playwright", "hypothesis", "schemathesis"):
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        assert probe.returncode != 0, f"{module} is installed in the clean venv"
    return venv_dir / "bin"


@pytest.fixture
def database_url(run_id: str) -> Iterator[str]:
    name = f"thumbs_install_{run_id}_{uuid.uuid4().hex[:6]}"
    create_database(PG_ADMIN_URL, name)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        drop_database(PG_ADMIN_URL, name)


def product_environment(data_dir: Path, origin: Origin, port: int, **extra: str) -> dict[str, str]:
    return clean_environment(
        THUMBS_DATA_DIR=str(data_dir),
        THUMBS_SECRET="install-secret",
        THUMBS_ADMIN_TOKEN="install-admin",
        THUMBS_WARM_TOKEN="install-warm",
        THUMBS_INGEST_TOKEN="install-ingest",
        THUMBS_ALLOWED_SOURCES=origin.base_url.removeprefix("http://"),
        THUMBS_ALLOW_PRIVATE_SOURCES="true",
        THUMBS_HOST="127.0.0.1",
        THUMBS_PORT=str(port),
        THUMBS_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",
        **extra,
    )


def run(bin_dir: Path, *args: str, environment: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "thumbs"), *args], env=environment, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_serve_from_the_installed_wheel(venv: Path, tmp_path: Path, origin: Origin, database_url: str) -> None:
    port = free_port()
    environment = product_environment(tmp_path / "data", origin, port, THUMBS_DATABASE_URL=database_url)
    source = origin.add(f"/install/{uuid.uuid4().hex}.png", demo_image(7, "small").data, content_type="image/png")
    # Run from an empty directory: nothing may come from the source checkout.
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    migrated = run(venv, "migrate", environment=environment, cwd=cwd)
    assert migrated.returncode == 0, migrated.stderr
    base = f"http://127.0.0.1:{port}"
    with stopping() as started:
        server = start("serve", [str(venv / "thumbs"), "serve"], environment, tmp_path / "logs", cwd=cwd)
        started.append(server)
        wait_until(answers(f"{base}/healthz"), 60, "thumbs serve to answer /healthz", [server])

        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and '<div id="root">' in page.text, page.text[:300]
        asset = page.text.split('src="', 1)[1].split('"', 1)[0]
        assert httpx.get(base + asset).status_code == 200

        body = {"url": source, "pipeline_id": "install", "step": "smoke"}
        refused = httpx.post(f"{base}/api/library/images", json=body)
        assert refused.status_code == 401, refused.text
        created = httpx.post(f"{base}/api/library/images", json=body,
                             headers={"authorization": "Bearer install-ingest"})
        assert created.status_code == 201, created.text
        thumbnail = httpx.get(created.json()["thumbnail_url"], timeout=30)
        assert thumbnail.status_code == 200
        assert thumbnail.headers["content-type"] == "image/jpeg" and thumbnail.content[:3] == b"\xff\xd8\xff"

        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["status"] in ("ok", "degraded")

        # A clean stop: uvicorn shuts the app down, then re-raises SIGTERM as its exit status.
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(20) in (0, -signal.SIGTERM), server.tail()
        assert "Application shutdown complete" in server.tail(), server.tail()


def test_backfill_a_legacy_table_from_the_installed_wheel(venv: Path, tmp_path: Path, origin: Origin) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    connection = sqlite3.connect(data_dir / "library.db")
    connection.execute("CREATE TABLE pipeline_step_outputs (id INTEGER PRIMARY KEY, url TEXT NOT NULL, "
                       "created_at TEXT, pipeline_id TEXT, step TEXT)")
    source = origin.add(f"/install/{uuid.uuid4().hex}.png", demo_image(3, "small").data, content_type="image/png")
    connection.execute("INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) "
                       "VALUES (?, '2024-01-01 10:00:00', 'legacy', 'final')", (source,))
    connection.commit()
    connection.close()
    environment = product_environment(data_dir, origin, free_port())

    assert run(venv, "migrate", environment=environment, cwd=tmp_path).returncode == 0
    backfilled = run(venv, "backfill", environment=environment, cwd=tmp_path)
    assert backfilled.returncode == 0, backfilled.stderr
    assert "1 done, 0 failed, 0 remaining" in backfilled.stdout, backfilled.stdout
    assert any(path.is_file() for path in (data_dir / "thumbs").rglob("*")), "no thumbnail in the store"


def test_worker_and_stack_from_the_installed_wheel(venv: Path, tmp_path: Path, origin: Origin,
                                                   redis_prefix: str) -> None:
    require_binary("nginx")
    port = free_port()
    environment = product_environment(
        tmp_path / "data", origin, port, THUMBS_REDIS_URL=REDIS_URL, THUMBS_REDIS_PREFIX=redis_prefix + "install:",
        THUMBS_STACK_APP_PORT=str(free_port()), THUMBS_EDGE_CACHE_SIZE="64m",
    )
    with stopping() as started:
        worker = start("worker", [str(venv / "thumbs"), "worker"], environment, tmp_path / "logs", cwd=tmp_path)
        started.append(worker)
        stack = start("stack", [str(venv / "thumbs"), "stack", "--workers", "1"], environment, tmp_path / "logs",
                      cwd=tmp_path)
        started.append(stack)
        base = f"http://127.0.0.1:{port}"
        wait_until(answers(f"{base}/api/library/images?limit=1"), 90, "the stack's edge", [worker, stack])
        assert httpx.get(f"{base}/").status_code == 200
        assert worker.alive(), worker.tail()
        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(30) in (0, 130), stack.tail()
        worker.process.send_signal(signal.SIGINT)
        assert worker.process.wait(30) in (0, 130), worker.tail()
