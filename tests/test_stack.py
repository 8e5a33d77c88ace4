"""`thumbs stack` as an operator runs it: nginx + app workers + warm worker, real PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_binary
from tests.support.demo_server import ROOT, clean_environment
from tests.support.origin import Origin
from tests.support.servers import free_port
from thumbs.demo.images import demo_image

pytestmark = pytest.mark.nginx


@dataclass(frozen=True)
class Stack:
    public: str
    internal: str
    environment: dict[str, str]


@pytest.fixture
def stack(tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str, origin: Origin) -> Iterator[Stack]:
    require_binary("nginx")
    port, internal = free_port(), free_port()
    environment = clean_environment(
        THUMBS_EDGE_INTERNAL_PORT=str(internal),
        THUMBS_DATA_DIR=str(tmp_path / "data"),
        THUMBS_PORT=str(port),
        THUMBS_STACK_APP_PORT=str(free_port()),
        THUMBS_WORKERS="2",
        THUMBS_DATABASE_URL=pg_url,
        THUMBS_REDIS_URL=redis_url,
        THUMBS_REDIS_PREFIX=redis_prefix + "stack:",
        THUMBS_SECRET="stack-secret",
        THUMBS_ADMIN_TOKEN="admin-token",
        THUMBS_WARM_TOKEN="warm-token",
        THUMBS_INGEST_TOKEN="ingest-token",
        THUMBS_ALLOWED_SOURCES=origin.base_url.removeprefix("http://"),
        THUMBS_ALLOW_PRIVATE_SOURCES="true",
    )
    log = (tmp_path / "stack.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "thumbs.cli", "stack"], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "stack.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{internal}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "stack.log").read_text()
            time.sleep(0.3)
        yield Stack(base_url, f"http://127.0.0.1:{internal}", environment)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        finally:
            log.close()
        # Ctrl-C stops everything the stack started: nothing keeps the edge port.
        with pytest.raises(httpx.ConnectError):
            httpx.get(base_url + "/healthz", timeout=1)


def test_stack_serves_the_library_through_nginx_with_cache_hits(stack: Stack, origin: Origin) -> None:
    source = origin.add("/stack/one.png", demo_image(5, "small").data, content_type="image/png")
    body = {"url": source, "pipeline_id": "p1", "step": "generate"}
    # Ingest is not on the public edge, even with the token; the internal listener has it.
    token = {"authorization": "Bearer ingest-token"}
    public = httpx.post(stack.public + "/api/library/images", json=body, headers=token)
    assert public.status_code == 405 and public.json()["error"] == "method_not_allowed"
    for path in ("/healthz", "/metrics", "/warm", "/api/library/generate-thumbnails", "/api/openapi.json"):
        hidden = httpx.get(stack.public + path)
        assert hidden.status_code == 404 and hidden.json()["error"] == "not_found", path
    created = httpx.post(
        stack.internal + "/api/library/images",
        json={"url": source, "pipeline_id": "p1", "step": "generate"},
        headers={"authorization": "Bearer ingest-token"},
        timeout=10,
    )
    assert created.status_code in (200, 201), created.text
    listing = httpx.get(stack.public + "/api/library/images", params={"limit": 5}, timeout=10).json()
    image = next(item for item in listing["images"] if item["url"] == source)
    assert image["thumbnail_url"].startswith(stack.public + "/t/")
    first = httpx.get(image["thumbnail_url"], timeout=30)
    second = httpx.get(image["thumbnail_url"], timeout=30)
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert first.headers["x-cache-status"] in {"MISS", "EXPIRED"}
    assert second.headers["x-cache-status"] == "HIT"
    assert second.content == first.content


def test_a_second_stack_on_the_same_ports_or_data_dir_stops_at_once_with_one_line(stack: Stack) -> None:
    """Started twice (a second `make stack`, a unit started by hand): one line, exit 1, nothing touched.

    It used to print "serving" (its readiness checks reached the first stack), then nginx's bind
    errors and "nginx exited with 1"; on the same data dir with other ports it ran, and on stopping
    removed the running stack's nginx.pid and its workers' metrics files.
    """
    nginx_pid = Path(stack.environment["THUMBS_DATA_DIR"]) / "stack" / "run" / "nginx.pid"
    before = nginx_pid.read_text()
    other_ports = {"THUMBS_PORT": str(free_port()), "THUMBS_EDGE_INTERNAL_PORT": str(free_port()),
                   "THUMBS_STACK_APP_PORT": str(free_port())}
    for case, extra in (("same ports", {}), ("same data dir", other_ports)):
        second = subprocess.run(
            [sys.executable, "-m", "thumbs.cli", "stack"], cwd=ROOT, env={**stack.environment, **extra},
            capture_output=True, timeout=60,
        )
        lines = [line for line in (second.stdout + second.stderr).decode().splitlines() if line.strip()]
        assert second.returncode == 1 and len(lines) == 1, (case, lines)
        assert "in use" in lines[0], (case, lines)
    assert nginx_pid.read_text() == before
    assert httpx.get(stack.public + "/api/library/images", timeout=10).status_code == 200


def descendants(pid: int) -> set[int]:
    """Every process under ``pid``, from /proc's children lists."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(child) for child in (task / "children").read_text().split()}
            except OSError:
                continue
            pending.extend(children - found)
            found |= children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_stack_stopped_by_a_signal_leaves_no_process_or_port(tmp_path: Path, stop_signal: signal.Signals) -> None:
    """`docker stop` and systemd send SIGTERM; a crashed or OOM-killed stack must not leave nginx behind."""
    require_binary("nginx")
    port, internal = free_port(), free_port()
    environment = clean_environment(
        THUMBS_DATA_DIR=str(tmp_path / "data"),
        THUMBS_PORT=str(port),
        THUMBS_EDGE_INTERNAL_PORT=str(internal),
        THUMBS_STACK_APP_PORT=str(free_port()),
        THUMBS_WORKERS="1",
        THUMBS_SECRET="stack-secret",
        THUMBS_ADMIN_TOKEN="admin-token",
        THUMBS_WARM_TOKEN="warm-token",
        THUMBS_INGEST_TOKEN="ingest-token",
        THUMBS_EDGE_TEMP_DIR=str(tmp_path / "edge-temp"),  # a SIGKILLed stack cannot clean up its /dev/shm one
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "thumbs.cli", "stack"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None
            try:
                if httpx.get(f"http://127.0.0.1:{internal}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.3)
        children = descendants(process.pid)
        assert len(children) >= 3  # nginx master + workers, the app's uvicorn
        process.send_signal(stop_signal)
        process.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if alive(pid)]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    finally:
        leftovers = descendants(process.pid) | {pid for pid in children if alive(pid)}
        for pid in leftovers:  # a failing run must not leave nginx on a port for the next test
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()


def test_nginx_stages_responses_off_the_data_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Temp files go where THUMBS_EDGE_TEMP_DIR says, else to memory (/dev/shm), else to the data dir.

    On the data disk, a full disk drops every MISS (tests/test_edge.py shows it through nginx).
    """
    from thumbs import stack as stack_module
    from thumbs.settings import Settings

    data = tmp_path / "data"
    memory = tmp_path / "memory"
    memory.mkdir()
    monkeypatch.setattr(stack_module, "MEMORY_FILESYSTEM", memory)

    def temp_paths(edge_temp_dir: Path | None = None) -> set[str]:
        settings = Settings(_env_file=None, data_dir=data, edge_temp_dir=edge_temp_dir)
        config = stack_module.write_nginx_config(settings, data).read_text()
        lines = [line.split() for line in config.splitlines() if "_temp_path" in line]
        assert len(lines) == 5  # client body, proxy, fastcgi, uwsgi, scgi: none left at nginx's default
        return {str(Path(words[1]).parent) for words in lines}

    chosen = temp_paths(edge_temp_dir=tmp_path / "operator")
    assert chosen == {str((tmp_path / "operator").resolve())} and (tmp_path / "operator").is_dir()
    (by_default,) = temp_paths()
    assert Path(by_default).parent == memory and Path(by_default).name.startswith("thumbs-edge-")
    assert temp_paths() == {by_default}  # the same directory on every start of this data dir
    monkeypatch.setattr(stack_module.os, "access", lambda path, mode: False)  # /dev/shm not writable
    assert temp_paths() == {str((data / "run").resolve())}
