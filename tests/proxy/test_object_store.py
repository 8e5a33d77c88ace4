"""The S3-compatible store, against a real S3 server process (moto's standalone server).

Two proxy processes with separate data dirs share one bucket and one Redis: one origin fetch
per image between them, and after Redis is flushed the second serves the first's thumbnails
from the bucket.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from proxy.object_store import ObjectStore, StoreUnavailable
from proxy.stores import BadStoreURL, store_from_url
from proxy.urls import thumbnail_url
from tests.conftest import cannot_run
from tests.support import images
from tests.support.origin import Origin
from tests.support.processes import answers, wait_until
from tests.support.proxy_process import proxy_process
from tests.support.servers import free_port
from thumbs.settings import Settings

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "thumbs-test", "AWS_SECRET_ACCESS_KEY": "thumbs-test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on a free loopback port, for this module."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(binary).exists():
        cannot_run("moto_server is not installed (the dev extras bring moto[server])")
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(answers(endpoint + "/", 200), 30, "moto_server")
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    name = f"thumbs-{uuid.uuid4().hex[:12]}"
    assert httpx.put(f"{s3_endpoint}/{name}").status_code == 200
    return name


def test_store_urls_are_parsed_strictly() -> None:
    assert store_from_url("file:///var/thumbs").describe() == "file:///var/thumbs"
    for bad in ("s3://", "s3://key:secret@bucket/p", "s3://b/p?colour=red", "s3://b/p?endpoint=ftp://x",
                "gs://bucket/p", "file://"):
        with pytest.raises(BadStoreURL):
            store_from_url(bad)


async def test_objects_round_trip_and_a_dead_server_is_an_oserror(s3_endpoint: str, bucket: str) -> None:
    store = store_from_url(f"s3://{bucket}/thumbs/v1?endpoint={s3_endpoint}")
    assert isinstance(store, ObjectStore)
    key = "ab" + uuid.uuid4().hex
    assert await store.get(key) is None and await store.exists(key) is False
    await store.put(key, b"jpeg bytes")
    assert await store.get(key) == b"jpeg bytes" and await store.exists(key) is True
    await store.check_writable()
    async with httpx.AsyncClient() as client:
        listing = (await client.get(f"{s3_endpoint}/{bucket}?list-type=2")).text
    assert f"thumbs/v1/{key[:2]}/{key}" in listing and ".health" not in listing
    dead = store_from_url(f"s3://{bucket}/p?endpoint=http://127.0.0.1:{free_port()}")
    for call in (dead.get(key), dead.put(key, b"x"), dead.exists(key), dead.check_writable()):
        with pytest.raises(StoreUnavailable) as raised:
            await asyncio.wait_for(call, 20)
        assert isinstance(raised.value, OSError)


def test_two_replicas_share_one_bucket(
    tmp_path: Path, s3_endpoint: str, bucket: str, origin: Origin, redis_url: str, redis_prefix: str,
    make_settings: Callable[..., Settings], unique: Callable[[str], str],
) -> None:
    prefix = f"{redis_prefix}s3-{uuid.uuid4().hex[:6]}:"
    settings = make_settings(redis_url=redis_url, redis_prefix=prefix,
                             store_url=f"s3://{bucket}/shared?endpoint={s3_endpoint}")
    paths = [unique(f"s3-{n}.jpg") for n in range(6)]
    for path in paths:
        origin.add(path, images.jpeg(images.photo(640, 480)), content_type="image/jpeg", delay=0.3)
    with proxy_process(settings, tmp_path / "a", extra_env=CREDENTIALS) as (first, _), \
            proxy_process(settings, tmp_path / "b", extra_env=CREDENTIALS) as (second, _):

        def url(base: str, path: str) -> str:
            return thumbnail_url(origin.base_url + path, settings.secret, base)

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(*(client.get(url(base, path)) for path in paths[:3]
                                              for base in (first, second, first, second)))

        # Both replicas at once for the same images: one origin fetch each, between them.
        assert all(response.status_code == 200 for response in asyncio.run(burst()))
        assert [origin.hits[path] for path in paths[:3]] == [1, 1, 1]
        # Only the first makes these; then Redis forgets everything.
        for path in paths[3:]:
            assert httpx.get(url(first, path), timeout=30).headers["x-thumb-tier"] == "generated"
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        for path in paths[3:]:
            response = httpx.get(url(second, path), timeout=30)
            assert response.status_code == 200 and response.headers["x-thumb-tier"] == "disk", response.headers
        assert [origin.hits[path] for path in paths] == [1] * 6
    # Nothing went to the local disks: the bucket is the store.
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and path.suffix != ".log"
                and "thumbs" in path.parts]
