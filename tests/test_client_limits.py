"""`thumbs serve` without nginx bounds slow clients: header and body timeouts, a concurrency cap."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

from tests.support.demo_server import clean_environment
from tests.support.processes import answers, start, stopping, wait_until
from tests.support.servers import free_port

STALLED_POST = (b"POST /api/library/images HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer i\r\nContent-Length: 100\r\n\r\n{")


@contextmanager
def serving(tmp_path: Path, **limits: str) -> Iterator[int]:
    port = free_port()
    environment = clean_environment(
        THUMBS_DATA_DIR=str(tmp_path / "data"), THUMBS_SECRET="s", THUMBS_ADMIN_TOKEN="a", THUMBS_WARM_TOKEN="w",
        THUMBS_INGEST_TOKEN="i", THUMBS_PORT=str(port), **limits,
    )
    with stopping() as started:
        started.append(start("serve", [sys.executable, "-m", "thumbs.cli", "serve"], environment, tmp_path / "logs"))
        wait_until(answers(f"http://127.0.0.1:{port}/healthz"), 60, "thumbs serve", started)
        yield port


def read_until_closed(connection: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    connection.settimeout(limit)
    started, data = time.monotonic(), b""
    while chunk := connection.recv(65536):
        data += chunk
    return data, time.monotonic() - started


def test_headers_and_bodies_that_stall_are_cut_off(tmp_path: Path) -> None:
    with serving(tmp_path, THUMBS_HEADER_TIMEOUT="1", THUMBS_BODY_TIMEOUT="1") as port:
        with socket.create_connection(("127.0.0.1", port)) as idle:
            data, waited = read_until_closed(idle, limit=10)  # never sends a byte
        assert data == b"" and waited < 5
        with socket.create_connection(("127.0.0.1", port)) as partial:
            partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # headers never finish
            data, waited = read_until_closed(partial, limit=10)
        assert data == b"" and waited < 5
        with socket.create_connection(("127.0.0.1", port)) as slow_body:
            slow_body.sendall(STALLED_POST)
            data, waited = read_until_closed(slow_body, limit=10)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), data[:200]
        assert orjson.loads(body)["error"] == "request_timeout"
        # A client that keeps its promises is unaffected.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


def test_a_body_dripped_just_inside_the_chunk_timeout_is_cut_off_at_the_whole_body_deadline(tmp_path: Path) -> None:
    with serving(tmp_path, THUMBS_BODY_TIMEOUT="2", THUMBS_BODY_DEADLINE="3") as port:
        with socket.create_connection(("127.0.0.1", port)) as drip:
            drip.sendall(STALLED_POST)
            drip.settimeout(0.5)
            started, data = time.monotonic(), b""
            while time.monotonic() - started < 15:
                try:
                    drip.sendall(b" ")  # a byte every half second: every chunk on time, the body never done
                    chunk = drip.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
            waited = time.monotonic() - started
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), data[:200]
        assert orjson.loads(body)["error"] == "request_timeout"
        assert "took more than 3 s" in orjson.loads(body)["detail"]
        assert 2.5 < waited < 8


def test_requests_beyond_the_concurrency_cap_get_a_json_503(tmp_path: Path) -> None:
    with serving(tmp_path, THUMBS_MAX_CONCURRENT_REQUESTS="2", THUMBS_BODY_TIMEOUT="30") as port:
        holders = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            for holder in holders:
                holder.sendall(STALLED_POST)  # each holds a slot while its body never comes
            wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 503, 10,
                       "the cap to be reached")
            refused = httpx.get(f"http://127.0.0.1:{port}/healthz")
            assert refused.json()["error"] == "overloaded" and refused.headers["retry-after"] == "1"
        finally:
            for holder in holders:
                holder.close()
        wait_until(answers(f"http://127.0.0.1:{port}/healthz"), 10, "slots to free")


def test_requests_the_parser_refuses_get_a_json_400(tmp_path: Path) -> None:
    refused = [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        b"POST /api/library/images HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
    ]
    with serving(tmp_path) as port:
        for request in refused:
            with socket.create_connection(("127.0.0.1", port)) as connection:
                connection.sendall(request)
                data, _ = read_until_closed(connection, limit=10)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400"), (request, data[:200])
            assert b"content-type: application/json" in head.lower(), head
            assert orjson.loads(body)["error"] == "bad_request"
