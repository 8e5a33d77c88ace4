"""nginx as the benchmarks use it: a static origin, and the product's edge plus two ceilings.

The origin serves the corpus under ``/u/{n}/{name}``, so every request can be a new source
URL (a cache miss for the proxy and for thumbor) while the bytes come from a few files.
The edge is exactly ``thumbs.stack``'s rendered config; beside it, in the same nginx, the
bench adds a static file server (the HIT ceiling) and an uncached pass-through to the app.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.services import free_port, running
from thumbs.settings import Settings
from thumbs.stack import find_nginx, write_nginx_config

ORIGIN_CONFIG = """\
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    log_format path '$request_uri';
    access_log {run}/access.log path;
    sendfile on;
    client_body_temp_path {run}/client_body;
    proxy_temp_path {run}/proxy_temp;
    fastcgi_temp_path {run}/fastcgi_temp;
    uwsgi_temp_path {run}/uwsgi_temp;
    scgi_temp_path {run}/scgi_temp;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /u/ {{ rewrite ^/u/[^/]+/(.+)$ /$1 break; }}
        location = /ping {{ return 204; }}
    }}
}}
"""

EDGE_EXTRAS = """
# Added by bench/: the ceiling for HITs, and the app without the edge cache.
server {{
    listen 127.0.0.1:{static_port};
    root {static_root};
    location / {{ add_header Cache-Control "public, max-age=31536000, immutable"; }}
}}
server {{
    listen 127.0.0.1:{pass_port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location / {{ proxy_pass http://thumbs_proxy; }}
}}
"""
NAIVE_EXTRA = """
server {{
    listen 127.0.0.1:{naive_port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location = /naive.html {{ root {naive_root}; }}
    location / {{ proxy_pass http://thumbs_api; }}
}}
"""


@dataclass
class Origin:
    base_url: str
    access_log: Path

    def url(self, name: str, unique: int | str) -> str:
        return f"{self.base_url}/u/{unique}/{name}"

    def fetches(self) -> collections.Counter[str]:
        """Origin requests so far, by path."""
        if not self.access_log.exists():
            return collections.Counter()
        return collections.Counter(self.access_log.read_text().split())


@contextlib.contextmanager
def origin(root: Path, work: Path) -> Iterator[Origin]:
    run = (work / "origin-nginx").resolve()
    run.mkdir(parents=True, exist_ok=True)
    (run / "access.log").unlink(missing_ok=True)
    port = free_port()
    config = run / "nginx.conf"
    config.write_text(ORIGIN_CONFIG.format(run=run, port=port, root=root.resolve()))
    argv = [find_nginx(), "-p", str(run), "-c", str(config), "-g", "daemon off;"]
    with running(argv, run / "stdout.log", f"http://127.0.0.1:{port}/ping"):
        yield Origin(f"http://127.0.0.1:{port}", run / "access.log")


@dataclass
class Edge:
    url: str  # the product's edge (cached /t/)
    static_url: str  # nginx serving a static file: the ceiling for HITs
    pass_url: str  # nginx -> app, no cache
    naive_url: str | None


@contextlib.contextmanager
def edge(settings: Settings, work: Path, static_file: Path, naive_root: Path | None = None) -> Iterator[Edge]:
    """The stack's nginx in front of ``settings.stack_app_port``, listening on ``settings.port``."""
    directory = (work / "edge-nginx").resolve()
    main = write_nginx_config(settings, directory)
    static_port, pass_port, naive_port = free_port(), free_port(), free_port()
    extras = EDGE_EXTRAS.format(static_port=static_port, static_root=static_file.parent.resolve(),
                                pass_port=pass_port)
    if naive_root is not None:
        extras += NAIVE_EXTRA.format(naive_port=naive_port, naive_root=naive_root.resolve())
    conf = directory / "run" / "thumbs.conf"
    conf.write_text(conf.read_text() + extras)
    argv = [find_nginx(), "-p", str(directory), "-c", str(main.resolve()), "-g", "daemon off;"]
    with running(argv, directory / "stdout.log", f"http://127.0.0.1:{static_port}/{static_file.name}"):
        yield Edge(
            url=f"http://{settings.host}:{settings.port}",
            static_url=f"http://127.0.0.1:{static_port}/{static_file.name}",
            pass_url=f"http://127.0.0.1:{pass_port}",
            naive_url=f"http://127.0.0.1:{naive_port}" if naive_root is not None else None,
        )
