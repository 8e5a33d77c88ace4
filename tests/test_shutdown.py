"""A stopping `thumbs serve` waits THUMBS_SHUTDOWN_TIMEOUT for work in flight, then exits without it.

A render libvips cannot interrupt (a decode that runs away inside C) must not keep SIGTERM, what
`docker stop` and systemd send, from stopping the worker: the supervisor would otherwise wait for
its own kill timeout, or forever.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from proxy.urls import thumbnail_url
from tests.support.demo_server import clean_environment
from tests.support.images import jpeg, photo
from tests.support.processes import answers, start, stopping, wait_until
from tests.support.servers import free_port

# `thumbs serve` whose render never returns (it sleeps in C, as a runaway libvips decode would,
# with the GIL released), and says on a file when one has started.
RUNAWAY_SERVE = """
import pathlib, sys, time
import proxy.service

started = pathlib.Path(sys.argv[1])

def runaway(*args, **kwargs):
    started.touch()
    time.sleep(3600)

proxy.service.render = runaway
sys.argv = ["thumbs", "serve"]
from thumbs.cli import app
app()
"""


class _OneImage(BaseHTTPRequestHandler):
    body = jpeg(photo(320, 240))  # what every GET answers

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OneImage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/photo.jpg"
    finally:
        server.shutdown()
        server.server_close()


def test_sigterm_with_a_render_that_never_returns_exits_within_the_shutdown_timeout(tmp_path: Path) -> None:
    port, started_flag = free_port(), tmp_path / "render-started"
    environment = clean_environment(
        THUMBS_DATA_DIR=str(tmp_path / "data"), THUMBS_SECRET="s", THUMBS_ADMIN_TOKEN="a", THUMBS_WARM_TOKEN="w",
        THUMBS_INGEST_TOKEN="i", THUMBS_PORT=str(port), THUMBS_ALLOW_PRIVATE_SOURCES="true",
        THUMBS_ALLOWED_SOURCES="127.0.0.1", THUMBS_SHUTDOWN_TIMEOUT="2",
    )
    with origin() as source, stopping() as running:
        serve = start("serve", [sys.executable, "-c", RUNAWAY_SERVE, str(started_flag)], environment,
                      tmp_path / "logs")
        running.append(serve)
        wait_until(answers(f"http://127.0.0.1:{port}/healthz"), 60, "thumbs serve", running)
        url = thumbnail_url(source, "s", f"http://127.0.0.1:{port}")
        client = threading.Thread(target=lambda: _quietly_get(url), daemon=True)
        client.start()
        wait_until(started_flag.exists, 30, "the render to start", running)

        serve.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        while serve.alive() and time.monotonic() - stopped_at < 20:
            time.sleep(0.05)
        waited = time.monotonic() - stopped_at
        assert not serve.alive(), f"still running 20 s after SIGTERM:\n{serve.tail()}"
        # The shutdown timeout (2 s) plus uvicorn's own steps, far from the render's hour.
        assert waited < 8, f"took {waited:.1f} s to stop:\n{serve.tail()}"
        assert "still running" in serve.tail(), serve.tail()  # the log says what was left behind


def _quietly_get(url: str) -> None:
    try:
        httpx.get(url, timeout=30)
    except httpx.HTTPError:
        pass  # the server went away with the request in flight, as it should
