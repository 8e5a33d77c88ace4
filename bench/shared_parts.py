"""What each shared part costs per operation, for docs/SCALING.md.

Times the operations a proxy or API replica makes against the parts it shares with other
replicas: the store (disk, and an S3-compatible server: moto's, started here), the Redis
thumbnail tier, the durable warm stream (XADD) and the library's listing query (PostgreSQL).
A 4.4 KB payload (a typical thumbnail), interleaved rounds, p50/p95 per operation.

    .venv/bin/python -m bench.shared_parts [--ops 300] [--out bench/results/shared_parts.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import orjson
from redis.asyncio import Redis

from bench.machine import describe as machine_facts
from bench.services import free_port
from proxy.object_store import ObjectStore
from proxy.storage import DiskStore
from proxy.stores import store_from_url

REDIS_URL = os.environ.get("THUMBS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PAYLOAD = os.urandom(4400)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    binary = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


async def timed(operation: Callable[[int], Awaitable[object]], ops: int, first: int = 0) -> list[float]:
    """ms per call of ``operation(n)`` for n in first .. first + ops - 1."""
    samples = []
    for n in range(first, first + ops):
        started = time.perf_counter()
        await operation(n)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 3), "p95_ms": round(ordered[int(len(ordered) * 0.95)], 3),
            "n": len(ordered)}


async def measure(ops: int, endpoint: str) -> dict[str, dict[str, float]]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient() as client:
        await client.put(f"{endpoint}/{bucket}")
    work = Path(tempfile.mkdtemp(prefix="thumbs-shared-"))
    disk = DiskStore(work / "store")
    s3 = store_from_url(f"s3://{bucket}/thumbs?endpoint={endpoint}")
    assert isinstance(s3, ObjectStore)
    redis = Redis.from_url(REDIS_URL)
    prefix = f"bench-shared-{uuid.uuid4().hex[:6]}:"
    keys = [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(ops)]
    results: dict[str, list[float]] = {}
    try:
        cases: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
            ("disk put (write, rename)", lambda n: disk.put(keys[n], PAYLOAD)),
            ("disk get", lambda n: disk.get(keys[n])),
            ("s3 put (moto server)", lambda n: s3.put(keys[n], PAYLOAD)),
            ("s3 get (moto server)", lambda n: s3.get(keys[n])),
            ("redis set (thumbnail tier)", lambda n: redis.set(f"{prefix}t:{keys[n]}", PAYLOAD, ex=60)),
            ("redis get (thumbnail tier)", lambda n: redis.get(f"{prefix}t:{keys[n]}")),
            ("redis xadd (durable warm stream)",
             lambda n: redis.xadd(f"{prefix}warm", {"source": keys[n], "attempts": 0, "tag": str(n)})),
        ]
        # Interleaved in rounds of 50, so drift on a shared machine hits every case alike.
        for start in range(0, ops, 50):
            for name, operation in cases:
                chunk = min(50, ops - start)
                results.setdefault(name, []).extend(await timed(operation, chunk, start))
    finally:
        keys_left = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys_left:
            await redis.delete(*keys_left)
        await redis.aclose()
        shutil.rmtree(work, ignore_errors=True)
    return {name: summary(samples) for name, samples in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/shared_parts.json"))
    args = parser.parse_args()
    with moto_server() as endpoint:
        result = asyncio.run(measure(args.ops, endpoint))
    body = {"section": "shared_parts", "machine": machine_facts(), "payload_bytes": len(PAYLOAD), "result": result}
    args.out.write_bytes(orjson.dumps(body) + b"\n")
    for name, figures in result.items():
        print(f"{name:36} p50 {figures['p50_ms']:7.3f} ms   p95 {figures['p95_ms']:7.3f} ms")


if __name__ == "__main__":
    main()
