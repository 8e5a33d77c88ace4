"""The nginx edge (the stack's generated config) while the app behind it is stopped and restarted
under load: cached thumbnails keep flowing, misses fail cleanly, and service resumes."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from proxy.urls import thumbnail_path
from tests.conftest import require_binary
from tests.support import images
from tests.support.edge import run_nginx
from tests.support.origin import Origin
from tests.support.servers import free_port, serve_in_thread
from tests.support.wait import wait_until_sync
from thumbs.app import create_app
from thumbs.settings import Settings

pytestmark = pytest.mark.nginx


@pytest.fixture
def nginx_edge(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    nginx = require_binary("nginx")
    edge_port, app_port = free_port(), free_port()
    settings = make_settings(port=edge_port, stack_app_port=app_port, public_base_url=f"http://127.0.0.1:{edge_port}")
    with run_nginx(nginx, settings, tmp_path / "stack") as base:
        yield base, settings


class Load(threading.Thread):
    """Requests the given paths round-robin until stopped; counts statuses and cache results."""

    def __init__(self, base: str, paths: list[str]) -> None:
        super().__init__(daemon=True)
        self.base, self.paths = base, paths
        self.statuses: Counter[int] = Counter()
        self.cache: Counter[str] = Counter()
        self.answered = 0  # a plain int, safe to read from the test's thread
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            index = 0
            while not self.stop.is_set():
                response = client.get(self.paths[index % len(self.paths)])
                self.statuses[response.status_code] += 1
                self.cache[response.headers.get("x-cache-status", "?")] += 1
                self.answered += 1
                index += 1


def test_cached_thumbnails_keep_flowing_while_the_app_restarts(nginx_edge: tuple[str, Settings],
                                                               origin: Origin) -> None:
    base, settings = nginx_edge
    app_port = settings.stack_app_port
    sources = [origin.add(f"/edge-restart/{index}.jpg", images.jpeg(images.photo(120, 90))) for index in range(20)]
    paths = [thumbnail_path(source, settings.secret) for source in sources]
    late = thumbnail_path(origin.add("/edge-restart/late.jpg", images.jpeg(images.photo(120, 90))), settings.secret)
    with serve_in_thread(create_app(settings), port=app_port):
        assert [httpx.get(base + path).headers["x-cache-status"] for path in paths] == ["MISS"] * 20
    load = Load(base, paths)
    load.start()

    def answers(more: int, what: str) -> None:
        """Wait until the load has had ``more`` answers than now."""
        target = load.answered + more
        wait_until_sync(lambda: load.answered >= target, 30, what=f"{more} answers from the edge {what}")

    try:
        answers(20, "while the app is down")  # only the edge answers
        down = httpx.get(base + late, timeout=10)
        with serve_in_thread(create_app(settings), port=app_port):
            back = httpx.get(base + late, timeout=10)
            answers(20, "with the app back")
        answers(20, "with the app down again")
    finally:
        load.stop.set()
        load.join(timeout=10)
    assert load.statuses == Counter({200: sum(load.statuses.values())}), load.statuses
    assert set(load.cache) == {"HIT"}
    # A miss with no upstream fails fast in the JSON contract, never hangs or shows nginx's HTML.
    assert down.status_code == 503 and down.json()["error"] == "upstream_unavailable"
    assert back.status_code == 200 and back.headers["x-cache-status"] == "MISS"
