"""Through the real nginx edge (the stack's generated config): cache MISS then HIT, one upstream hit per burst."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.urls import thumbnail_path
from tests.conftest import require_binary
from tests.support.edge import run_nginx
from tests.support.origin import Origin
from tests.support.servers import free_port, serve_in_thread
from thumbs.app import create_app
from thumbs.demo.images import demo_image
from thumbs.settings import Settings

pytestmark = pytest.mark.nginx


class CountingApp:
    """Counts the requests that get past the edge, by path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.hits = app, Counter[str]()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.hits[scope["path"]] += 1
        await self.app(scope, receive, send)


class Edge:
    def __init__(self, base_url: str, app: CountingApp, settings: Settings) -> None:
        self.base_url, self.app, self.settings = base_url, app, settings

    def path_for(self, source: str) -> str:
        return thumbnail_path(source, self.settings.secret)


@pytest.fixture
def edge(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Edge]:
    nginx = require_binary("nginx")
    edge_port, app_port = free_port(), free_port()
    settings = make_settings(port=edge_port, stack_app_port=app_port, public_base_url=f"http://127.0.0.1:{edge_port}")
    app = CountingApp(create_app(settings))
    with serve_in_thread(app, port=app_port), run_nginx(nginx, settings, tmp_path / "stack") as base_url:
        yield Edge(base_url, app, settings)


def test_first_request_misses_then_hits(edge: Edge, origin: Origin) -> None:
    source = origin.add("/edge/first.jpg", demo_image(1, "small").data, content_type="image/png")
    path = edge.path_for(source)
    first = httpx.get(edge.base_url + path)
    second = httpx.get(edge.base_url + path)
    assert first.status_code == 200 and second.status_code == 200
    assert first.headers["x-cache-status"] == "MISS"
    assert second.headers["x-cache-status"] == "HIT"
    assert second.content == first.content and second.headers["content-type"] == "image/jpeg"
    assert edge.app.hits[path] == 1


def test_twenty_simultaneous_requests_reach_the_proxy_once(edge: Edge, origin: Origin) -> None:
    source = origin.add("/edge/burst.jpg", demo_image(2, "small").data, content_type="image/png", delay=0.3)
    path = edge.path_for(source)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=edge.base_url, timeout=30) as client:
            return await asyncio.gather(*(client.get(path) for _ in range(20)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.content for r in responses}) == 1
    assert edge.app.hits[path] == 1
    assert origin.hits["/edge/burst.jpg"] == 1


def test_api_is_passed_through_uncached(edge: Edge) -> None:
    response = httpx.get(edge.base_url + "/api/library/images", params={"limit": 1})
    assert response.status_code == 200
    assert response.headers["x-cache-status"] == "BYPASS"
    assert "images" in response.json()


def test_bad_signature_is_json_403_through_the_edge(edge: Edge) -> None:
    response = httpx.get(edge.base_url + "/t/" + "A" * 43 + "/thumb/aHR0cDovL3guY29tL2EucG5n.jpg")
    assert response.status_code == 403
    assert response.json()["error"]
    assert "x-cache-status" in response.headers


def test_unreachable_app_answers_json_not_nginx_html(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    nginx = require_binary("nginx")
    edge_port = free_port()
    settings = make_settings(port=edge_port, stack_app_port=free_port())  # nothing listens on the app port
    with run_nginx(nginx, settings, tmp_path / "stack") as base_url:
        response = httpx.get(base_url + "/api/library/images")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "upstream_unavailable"
    assert response.headers["retry-after"] == "5"


def raw_request(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes no HTTP client would send; parse the status line, headers and body nginx returns."""
    host, port = httpx.URL(base_url).host, httpx.URL(base_url).port
    with socket.create_connection((host, port or 80), timeout=5) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            headers = dict(line.decode().split(": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
            headers = {name.lower(): value for name, value in headers.items()}
            if "content-length" in headers and len(body) >= int(headers["content-length"]):
                break
    return int(head.split(b" ")[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /.. HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /t/..%2f..%2fmetrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /.edge-error/500 HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"DELETE /t/x HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ],
    ids=[
        "dotdot",
        "nul",
        "encoded-traversal",
        "dots",
        "garbage",
        "bad-method",
        "connect",
        "version",
        "long-uri",
        "big-header",
        "internal-error-page",
        "delete",
    ],
)
def test_requests_nginx_refuses_itself_get_json_never_html_or_500(
    make_settings: Callable[..., Settings], tmp_path: Path, request_bytes: bytes, status: int
) -> None:
    nginx = require_binary("nginx")
    settings = make_settings(port=free_port(), stack_app_port=free_port())
    with run_nginx(nginx, settings, tmp_path / "stack") as base_url:
        got, headers, body = raw_request(base_url, request_bytes)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]


@contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (root only), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> None:
    """Write into ``directory`` until its filesystem refuses (ENOSPC)."""
    descriptor = os.open(directory / "ballast", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(descriptor, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(descriptor)


@pytest.mark.parametrize("fault", ["cache full", "cache read-only", "data dir full"])
def test_misses_are_still_answered_when_the_edge_cache_cannot_be_written(
    make_settings: Callable[..., Settings], tmp_path: Path, origin: Origin, fault: str
) -> None:
    """A full or read-only cache filesystem costs the edge its cache, not its answers: each MISS is the app's.

    nginx used to write each cacheable response into the cache directory as it streamed it, and a failed write
    dropped the client's connection (no status, no body) on every MISS; staged in a temp file on the same full
    disk (the stack's data dir holding cache, temp files, store and database), it dropped them too.
    """
    nginx = require_binary("nginx")
    edge_port, app_port = free_port(), free_port()
    stack = tmp_path / "stack"
    whole_data_dir = fault == "data dir full"
    settings = make_settings(
        port=edge_port, stack_app_port=app_port, public_base_url=f"http://127.0.0.1:{edge_port}",
        edge_temp_dir=tmp_path / "edge-temp",  # another filesystem than the tmpfs, as /dev/shm is in the stack
        **({"data_dir": stack} if whole_data_dir else {}),
    )
    with small_filesystem(stack if whole_data_dir else stack / "cache", "4m" if whole_data_dir else "256k") as full:
        app = create_app(settings)
        with serve_in_thread(app, port=app_port), run_nginx(nginx, settings, stack) as base_url:
            if fault == "cache read-only":
                subprocess.run(["mount", "-o", "remount,ro", str(full)], check=True)
            else:
                fill(full)
            for number in range(8):
                image = demo_image(number, "small").data
                source = origin.add(f"/edge/fault-{number}.png", image, content_type="image/png")
                response = httpx.get(base_url + thumbnail_path(source, settings.secret), timeout=30)
                assert response.status_code == 200, response.text
                assert response.headers["content-type"] == "image/jpeg"
                assert response.content.startswith(b"\xff\xd8")
            error = httpx.get(base_url + "/t/" + "A" * 43 + "/thumb/aHR0cDovL3guY29tL2EucG5n.jpg", timeout=30)
            assert error.status_code == 403 and error.json()["error"]
