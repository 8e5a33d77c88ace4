"""docker-compose.yml, run: each service's own command and environment, as processes.

There is no Docker engine here, so the composed system runs as the compose file describes
it, with service hostnames mapped to 127.0.0.1 and free ports: the machine's PostgreSQL
(a database of this test's own) and Redis (a key prefix of its own) stand in for the
`postgres` and `redis` services, and the machine's nginx runs the template the compose file
mounts, rendered from the nginx service's environment as the official image does. `migrate`
runs once, then `api`, two `proxy` replicas and `worker` behind nginx. A change to the
compose file that breaks the stack (a command, a variable, a mount, an upstream) fails here.

The only settings added to the file's own: each process's port (all say 8000), the Redis
key prefix (shared Redis), and private sources allowed (the test origin is on loopback).
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import yaml

from tests.conftest import PG_ADMIN_URL, REDIS_URL, require_binary
from tests.support.demo_server import clean_environment
from tests.support.origin import Origin
from tests.support.pg import create_database, drop_database
from tests.support.processes import Running, answers, start, stopping, wait_until
from tests.support.servers import free_port
from thumbs.demo.images import demo_image
from thumbs.stack import MAIN_CONFIG, render_template

ROOT = Path(__file__).resolve().parents[1]
INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?([-?])([^}]*))?\}")
TOKENS = {"THUMBS_ADMIN_TOKEN": "c-admin", "THUMBS_WARM_TOKEN": "c-warm", "THUMBS_INGEST_TOKEN": "c-ingest"}

pytestmark = pytest.mark.nginx


def interpolate(value: str, dotenv: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, from the operator's .env."""

    def substitute(match: re.Match[str]) -> str:
        name, kind, argument = match.groups()
        if dotenv.get(name):
            return dotenv[name]
        if kind == "?":
            raise AssertionError(f"compose requires {name}: {argument}")
        return argument if kind == "-" else ""

    return INTERPOLATION.sub(substitute, value)


def service_environment(service: dict[str, Any], dotenv: dict[str, str]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: interpolate(str(value), dotenv) for key, value in environment.items()}


def remap(value: str, hosts: dict[str, str]) -> str:
    """Rewrite `service:port` references to where that service runs here."""
    for service_address, local in hosts.items():
        value = value.replace(service_address, local)
    return value


@pytest.fixture
def database(run_id: str) -> Iterator[str]:
    name = f"thumbs_compose_{run_id}_{uuid.uuid4().hex[:6]}"
    create_database(PG_ADMIN_URL, name)
    try:
        yield name
    finally:
        drop_database(PG_ADMIN_URL, name)


def test_the_compose_stack_runs_as_written(tmp_path: Path, origin: Origin, database: str,
                                           redis_prefix: str) -> None:
    nginx = require_binary("nginx")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    public_port, internal_port = free_port(), free_port()
    dotenv = {
        "THUMBS_SECRET": "compose-secret",
        "THUMBS_ALLOWED_SOURCES": origin.base_url.removeprefix("http://"),
        "THUMBS_PUBLIC_BASE_URL": f"http://127.0.0.1:{public_port}",
        **TOKENS,
    }
    ports = {"api": free_port(), "proxy-1": free_port(), "proxy-2": free_port(), "worker": 0, "migrate": 0}
    pg = urlsplit(PG_ADMIN_URL)
    hosts = {
        "postgres:5432": f"{pg.hostname}:{pg.port or 5432}",
        "redis:6379": urlsplit(REDIS_URL).netloc,
        "proxy:8000": f"127.0.0.1:{ports['proxy-1']}",
        "api:8000": f"127.0.0.1:{ports['api']}",
    }
    data_dir = tmp_path / "volumes" / "thumbs-data"
    data_dir.mkdir(parents=True)
    prefix = f"{redis_prefix}compose-{uuid.uuid4().hex[:6]}:"

    def thumbs_process(name: str, service_name: str) -> tuple[list[str], dict[str, str]]:
        service = services[service_name]
        environment = service_environment(service, dotenv)
        assert environment["THUMBS_DATA_DIR"] == "/data" and "thumbs-data:/data" in service["volumes"]
        environment = {key: remap(value, hosts) for key, value in environment.items()}
        database_url = urlsplit(environment["THUMBS_DATABASE_URL"])
        assert database_url.hostname == pg.hostname, "THUMBS_DATABASE_URL does not point at the postgres service"
        # The compose role and database are the postgres service's; here, this test's own database.
        environment["THUMBS_DATABASE_URL"] = urlunsplit(
            (database_url.scheme, f"{pg.username}@{pg.hostname}:{pg.port or 5432}", f"/{database}", "", ""))
        environment.update(
            THUMBS_DATA_DIR=str(data_dir), THUMBS_REDIS_PREFIX=prefix, THUMBS_ALLOW_PRIVATE_SOURCES="true",
            PYTHONUNBUFFERED="1",
        )
        if ports[name]:
            environment["THUMBS_PORT"] = str(ports[name])
        command = service["command"]
        assert command[0] == "thumbs"
        return [sys.executable, "-m", "thumbs.cli", *command[1:]], clean_environment(**environment)

    logs = tmp_path / "logs"
    command, environment = thumbs_process("migrate", "migrate")
    migrate = start("migrate", command, environment, logs, cwd=tmp_path)
    assert migrate.process.wait(90) == 0, migrate.tail()

    with stopping() as started:
        def run(name: str, service_name: str) -> Running:
            command, environment = thumbs_process(name, service_name)
            started.append(start(name, command, environment, logs, cwd=tmp_path))
            return started[-1]

        api = run("api", "api")
        proxies = [run("proxy-1", "proxy"), run("proxy-2", "proxy")]
        worker = run("worker", "worker")
        for name in ("api", "proxy-1", "proxy-2"):
            wait_until(answers(f"http://127.0.0.1:{ports[name]}/healthz"), 60, f"{name} /healthz", started)

        # nginx as the official image runs it: the mounted template, envsubst over THUMBS_* only.
        edge = services["nginx"]
        mounts = [volume.split(":") for volume in edge["volumes"] if volume.startswith("./")]
        template_path = next(ROOT / source for source, target, *_ in mounts if target.endswith(".template"))
        edge_environment = service_environment(edge, dotenv)
        assert edge_environment["NGINX_ENVSUBST_FILTER"] == "THUMBS_"
        published = {port.split(":")[1]: port.split(":")[0] for port in edge["ports"]}
        assert edge_environment["THUMBS_EDGE_LISTEN"] in published, "the public listener is not published"
        assert edge_environment["THUMBS_EDGE_INTERNAL_LISTEN"] not in published, "the internal listener is published"
        edge_dir = tmp_path / "nginx"
        for sub in ("run", "logs", "cache"):
            (edge_dir / sub).mkdir(parents=True)
        values = {key: remap(value, hosts) for key, value in edge_environment.items()}
        values["THUMBS_EDGE_LISTEN"] = f"127.0.0.1:{public_port}"
        values["THUMBS_EDGE_INTERNAL_LISTEN"] = f"127.0.0.1:{internal_port}"
        values["THUMBS_EDGE_CACHE_DIR"] = str(edge_dir / "cache")
        # Compose's DNS gives nginx every replica of `proxy`: two upstream servers.
        values["THUMBS_PROXY_UPSTREAM"] = f"127.0.0.1:{ports['proxy-1']};\n    server 127.0.0.1:{ports['proxy-2']}"
        (edge_dir / "run" / "thumbs.conf").write_text(render_template(template_path.read_text(), values))
        main = edge_dir / "nginx.conf"
        (edge_dir / "temp").mkdir(exist_ok=True)  # the image's /var/cache/nginx, beside the cache volume
        main.write_text(MAIN_CONFIG.format(user="user root;\n" if os.geteuid() == 0 else "", run=edge_dir / "run",
                                           logs=edge_dir / "logs", temp=edge_dir / "temp",
                                           mime_types="/etc/nginx/mime.types"))
        started.append(start("nginx", [nginx, "-p", str(edge_dir), "-c", str(main), "-g", "daemon off;"],
                             clean_environment(), logs))
        public, internal = f"http://127.0.0.1:{public_port}", f"http://127.0.0.1:{internal_port}"
        wait_until(answers(f"{internal}/healthz"), 30, "nginx's internal listener", started)

        source = origin.add(f"/compose/{uuid.uuid4().hex}.png", demo_image(11, "small").data,
                            content_type="image/png")
        body = {"url": source, "pipeline_id": "compose", "step": "final"}
        auth = {"authorization": f"Bearer {TOKENS['THUMBS_INGEST_TOKEN']}"}
        assert httpx.post(f"{public}/api/library/images", json=body, headers=auth).status_code == 405
        created = httpx.post(f"{internal}/api/library/images", json=body, headers=auth, timeout=10)
        assert created.status_code == 201, created.text
        image_id = created.json()["id"]

        def ready() -> bool:
            listing = httpx.get(f"{public}/api/library/images", params={"limit": 10}, timeout=5).json()
            return any(item["id"] == image_id and item["thumbnail_status"] == "ready" for item in listing["images"])

        # Only the worker consumes the warm stream (api and proxy run --no-warm-consumer).
        wait_until(ready, 60, "the worker to make the thumbnail and mark the row ready", started)
        assert "generated thumbnail" in worker.tail(20_000), worker.tail()
        assert origin.hits[urlsplit(source).path] == 1

        listing = httpx.get(f"{public}/api/library/images", params={"limit": 10}).json()
        image = next(item for item in listing["images"] if item["id"] == image_id)
        assert image["thumbnail_url"].startswith(public + "/t/")
        first = httpx.get(image["thumbnail_url"], timeout=30)
        second = httpx.get(image["thumbnail_url"], timeout=30)
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        assert first.headers["x-cache-status"] == "MISS"
        # The replica found the worker's thumbnail in a shared tier: nothing was made on the page view.
        assert first.headers["x-thumb-tier"] in ("redis", "disk"), first.headers
        assert second.headers["x-cache-status"] == "HIT" and second.content == first.content
        assert origin.hits[urlsplit(source).path] == 1

        for path in ("/healthz", "/metrics", "/warm", "/api/library/generate-thumbnails"):
            assert httpx.get(public + path).status_code == 404, path
        assert all(process.alive() for process in [api, *proxies, worker]), [p.tail() for p in started]
    for process in started:
        assert not process.alive(), f"{process.name} still running"
