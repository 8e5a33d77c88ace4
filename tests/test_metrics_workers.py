"""`/metrics` with THUMBS_WORKERS > 1: one scrape is the sum over workers, and never goes backwards."""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import httpx

from tests.support.demo_server import clean_environment
from tests.support.origin import Origin
from tests.support.processes import answers, start, stopping, wait_until
from tests.support.servers import free_port
from thumbs.demo.images import demo_image

REQUESTS = 40
SAMPLE = re.compile(r"^thumbs_proxy_requests_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def requests_total(base: str) -> float:
    # A fresh connection each time, so scrapes land on either worker.
    return sum(float(value) for value in SAMPLE.findall(httpx.get(f"{base}/metrics", timeout=10).text))


def test_one_scrape_counts_every_workers_requests(tmp_path: Path, origin: Origin) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    environment = clean_environment(
        THUMBS_DATA_DIR=str(data_dir), THUMBS_SECRET="m", THUMBS_ADMIN_TOKEN="a", THUMBS_WARM_TOKEN="w",
        THUMBS_INGEST_TOKEN="i", THUMBS_ALLOWED_SOURCES=origin.base_url.removeprefix("http://"),
        THUMBS_ALLOW_PRIVATE_SOURCES="true", THUMBS_PORT=str(port), THUMBS_WORKERS="2",
        THUMBS_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
    )
    source = origin.add(f"/metrics/{uuid.uuid4().hex}.png", demo_image(2, "small").data, content_type="image/png")
    base = f"http://127.0.0.1:{port}"
    with stopping() as started:
        server = start("serve", [sys.executable, "-m", "thumbs.cli", "serve"], environment, tmp_path / "logs")
        started.append(server)
        wait_until(answers(f"{base}/healthz"), 60, "two workers", [server])
        url = httpx.post(f"{base}/api/library/images", json={"url": source, "pipeline_id": "p", "step": "s"},
                         headers={"authorization": "Bearer i"}).json()["thumbnail_url"]
        before = requests_total(base)
        for _ in range(REQUESTS):
            assert httpx.get(url, timeout=30).status_code == 200
        seen = [requests_total(base) for _ in range(8)]
    assert all(value == before + REQUESTS for value in seen), (before, seen)
    # Both workers wrote their own files (so the sum above really spans processes).
    pids = {path.stem.rsplit("_", 1)[-1] for path in (data_dir / "metrics").glob("counter_*.db")}
    assert len(pids) >= 2, pids
