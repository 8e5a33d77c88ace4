"""Redis going away, a full processing pool, /healthz and /metrics."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.proxy.conftest import Running, running
from tests.support import images
from tests.support.origin import Origin
from tests.support.servers import free_port
from tests.support.wait import wait_until
from thumbs.settings import Settings

REDIS_SERVER = "/usr/bin/redis-server"


@contextmanager
def throwaway_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server") or REDIS_SERVER
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "throwaway redis did not start"
                time.sleep(0.05)
        client.close()
        yield url, process
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_redis_down_keeps_serving_from_memory_and_disk(make_settings: Callable[..., Settings],
                                                            origin: Origin, unique) -> None:
    first = origin.add(unique("a.jpg"), images.jpeg(images.photo(300, 200)))
    second = origin.add(unique("b.jpg"), images.jpeg(images.photo(300, 200)))
    with throwaway_redis() as (url, server):
        settings = make_settings(redis_url=url, redis_prefix="t:")
        async with running(settings) as proxy:
            assert (await proxy.thumb(first)).headers["x-thumb-tier"] == "generated"
            health = (await proxy.client.get("/readyz")).json()
            assert health["status"] == "ok" and health["checks"]["redis"]["ok"] is True
            server.kill()
            server.wait()
            assert (await proxy.thumb(first)).headers["x-thumb-tier"] == "memory"
            fresh = await proxy.thumb(second)
            assert fresh.status_code == 200 and fresh.headers["x-thumb-tier"] == "generated"
            health = await proxy.client.get("/readyz")
            assert health.status_code == 200
            assert health.json()["status"] == "degraded"
            assert health.json()["checks"]["redis"]["ok"] is False
        async with running(settings) as proxy:  # restart with Redis still down
            response = await proxy.thumb(first)
            assert response.status_code == 200 and response.headers["x-thumb-tier"] == "disk"
    assert origin.hits[unique("a.jpg")] == 1 and origin.hits[unique("b.jpg")] == 1


async def test_full_pool_answers_503_with_retry_after(make_settings: Callable[..., Settings], origin: Origin,
                                                      unique) -> None:
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(300, 200)))
    async with running(make_settings(processing_threads=1, processing_queue=1)) as proxy:
        pool = proxy.proxy.service.pool
        release = threading.Event()
        blockers = [asyncio.create_task(pool.run(release.wait, 10)) for _ in range(2)]
        await wait_until(lambda: pool.in_flight == 2, what="the blockers to fill the pool")
        try:
            response = await proxy.thumb(source)
            assert response.status_code == 503
            assert response.json()["error"] == "overloaded"
            assert response.headers["retry-after"] == "1"
        finally:
            release.set()
            await asyncio.gather(*blockers)
        # Not remembered as a failure: once the pool drains the same thumbnail works.
        assert (await proxy.thumb(source)).status_code == 200
        metrics = (await proxy.client.get("/metrics")).text
        assert "thumbs_proxy_pool_rejections_total 1.0" in metrics


async def test_readyz_without_redis(proxy: Running) -> None:
    response = await proxy.client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["libvips"]["ok"] and body["checks"]["disk"]["ok"]
    assert body["checks"]["redis"] == {"ok": True, "configured": False}


async def test_healthz_is_liveness_only_and_readyz_reports_a_full_pool_as_busy(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A full pool is load, not death: /healthz stays 200 and /readyz says busy, with libvips ok."""
    async with running(make_settings(processing_threads=1, processing_queue=1)) as proxy:
        pool = proxy.proxy.service.pool
        release = threading.Event()
        blockers = [asyncio.create_task(pool.run(release.wait, 10)) for _ in range(2)]
        await wait_until(lambda: pool.in_flight == 2, what="the blockers to fill the pool")
        try:
            live = await proxy.client.get("/healthz")
            ready = await proxy.client.get("/readyz")
        finally:
            release.set()
            await asyncio.gather(*blockers)
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "busy" and body["checks"]["libvips"]["ok"] is True
    assert body["checks"]["pool"]["saturation"] >= 1.0
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    async with running(make_settings(data_dir=blocker)) as broken:
        assert (await broken.client.get("/healthz")).status_code == 200
        assert (await broken.client.get("/readyz")).status_code == 503


async def test_readyz_down_when_disk_is_not_writable(make_settings: Callable[..., Settings],
                                                      tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    async with running(make_settings(data_dir=blocker)) as proxy:
        response = await proxy.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "down" and response.json()["checks"]["disk"]["ok"] is False


async def test_metrics_count_requests_tiers_and_work(proxy: Running, origin: Origin, unique) -> None:
    held = threading.Event()  # answered once all three share the flight: two coalesced waits, whatever the host
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(300, 200)), hold=held)
    requests = asyncio.gather(*(proxy.thumb(source) for _ in range(3)))
    try:
        await wait_until(lambda: proxy.proxy.service.flights.coalesced == 2, what="three requests on one flight")
    finally:
        held.set()
    await requests
    await proxy.thumb(source)
    await proxy.client.get("/t/nothing")
    response = await proxy.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'thumbs_proxy_requests_total{status="200",tier="generated"} 3.0' in text
    assert 'thumbs_proxy_requests_total{status="200",tier="memory"} 1.0' in text
    assert 'thumbs_proxy_requests_total{status="404",tier="none"} 1.0' in text
    assert "thumbs_proxy_generation_seconds_count 1.0" in text
    assert "thumbs_proxy_origin_fetch_seconds_count 1.0" in text
    assert 'thumbs_proxy_coalesced_waits_total{scope="process"} 2.0' in text
    assert "thumbs_proxy_warm_queue_depth 0.0" in text
    assert "thumbs_proxy_pool_saturation" in text
    fetched = next(line for line in text.splitlines() if line.startswith("thumbs_proxy_origin_fetched_bytes_total"))
    assert float(fetched.split()[-1]) > 1000


async def test_generation_logs_one_structured_line(proxy: Running, origin: Origin, unique, caplog) -> None:
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(300, 200)))
    with caplog.at_level("INFO", logger="thumbs.proxy"):
        await proxy.thumb(source)
    [record] = [r for r in caplog.records if r.getMessage() == "generated thumbnail"]
    assert record.source_host == origin.base_url.removeprefix("http://")
    assert record.output_size == "200x133" and record.output_bytes > 0 and record.source_bytes > 0


async def test_readyz_details_are_one_short_line(make_settings: Callable[..., Settings]) -> None:
    """An unreachable object store's client error is pages of debug output: /readyz keeps one line of it."""
    closed = free_port()
    settings = make_settings(store_url=f"s3://thumbs/t?endpoint=http://127.0.0.1:{closed}&region=us-east-1",
                             redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with running(settings) as proxy:
        response = await proxy.client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["disk"]["ok"] is False and checks["redis"]["ok"] is False
    for check in ("disk", "redis"):
        detail = checks[check]["detail"]
        assert detail and "\n" not in detail and len(detail) <= 300, detail
