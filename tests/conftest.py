"""Shared fixtures: the machine's real PostgreSQL and Redis (isolated per run), a loopback origin.

Each run gets its own PostgreSQL database and Redis key prefix, removed afterwards, so
parallel runs and the developer's own data never collide.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis

from tests.support.demo_server import LiveServer, run_demo_server
from tests.support.origin import Origin
from tests.support.pg import PG_BIN, Cluster, create_database, drop_database
from tests.support.servers import serve_in_thread
from thumbs.settings import Settings

PG_ADMIN_URL = os.environ.get("THUMBS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("THUMBS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

# Variables the tests themselves read (not product settings), kept when the rest is cleared.
TEST_VARIABLES = ("THUMBS_TEST_", "THUMBS_SOAK_SCALE")


def clear_product_environment() -> list[str]:
    """Drop every inherited THUMBS_* setting, so Settings() and child processes see only what a test sets.

    Done at import, before any fixture builds Settings: a developer's exported THUMBS_REDIS_URL
    (or a CI variable) must not change what the suite tests.
    """
    cleared = [name for name in os.environ if name.startswith("THUMBS_") and not name.startswith(TEST_VARIABLES)]
    for name in cleared:
        del os.environ[name]
    return cleared


CLEARED_VARIABLES = clear_product_environment()


def cannot_run(reason: str) -> NoReturn:
    """A test whose real part is missing: an error in CI (it must run there), a skip locally."""
    if IN_CI:
        pytest.fail(f"cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """Path of ``name``; in CI a missing real part is an error, locally a skip."""
    path = shutil.which(name) or (name if os.path.exists(name) else None)
    if path:
        return path
    cannot_run(f"{name} is not installed (.ci/run installs it)")


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def pg_url(run_id: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    name = f"thumbs_test_{run_id}"
    create_database(PG_ADMIN_URL, name)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        drop_database(PG_ADMIN_URL, name)


@pytest.fixture(scope="session")
def redis_prefix(run_id: str) -> Iterator[str]:
    """A Redis key prefix for this run; every key under it is deleted afterwards."""
    prefix = f"thumbs-test-{run_id}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture(scope="session")
def origin() -> Iterator[Origin]:
    """A loopback origin shared by the session; give each test its own paths."""
    app = Origin()
    with serve_in_thread(app) as base_url:
        app.base_url = base_url
        yield app


@pytest.fixture
def make_settings(tmp_path: Path, origin: Origin) -> Callable[..., Settings]:
    """Settings for an isolated instance: its own data dir, the test origin allowed."""
    origin_host = origin.base_url.removeprefix("http://")

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "secret": "test-secret",
            "allowed_sources": [origin_host],
            "allow_private_sources": True,
            "admin_token": "admin-token",
            "warm_token": "warm-token",
            "ingest_open": True,  # test instances ingest without a token unless a test sets one
            "public_base_url": "http://thumbs.test",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real product (`thumbs demo --profile small`) with 1,100 images, for end-to-end tests."""
    with run_demo_server(tmp_path_factory.mktemp("live"), images=1100) as server:
        yield server


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A private PostgreSQL cluster, started; fault tests stop and start it (never the shared one)."""
    if PG_BIN is None:
        cannot_run("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        cannot_run("running PostgreSQL as root needs runuser (to become the postgres user)")
    made = Cluster(PG_BIN)
    try:
        made.init()
        made.start()
        yield made
    finally:
        made.remove()
