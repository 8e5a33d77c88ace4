"""Run the composed app under uvicorn."""

from __future__ import annotations

import math
import os
import shutil
from typing import TypedDict

import uvicorn

from proxy.metrics import MULTIPROCESS_ENV
from thumbs.app import create_app
from thumbs.limits import apply_header_timeout, limited
from thumbs.settings import Settings


class ServerOptions(TypedDict):
    host: str
    port: int
    log_level: str
    access_log: bool
    proxy_headers: bool
    server_header: bool
    timeout_graceful_shutdown: int


def server_options(settings: Settings) -> ServerOptions:
    """uvicorn's options for every way thumbs runs it (serve, demo, the stack's workers)."""
    return ServerOptions(
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,  # the proxy logs one structured line per generated thumbnail
        proxy_headers=True,
        server_header=False,
        # Past this, requests still in flight are cancelled (a render that never returns must not
        # keep a stopping worker alive); the processing pool then waits as long for its threads.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),  # uvicorn takes whole seconds
    )


def run_server(settings: Settings) -> None:
    protocol = apply_header_timeout(settings.header_timeout)
    if settings.workers == 1:
        uvicorn.run(limited(create_app(settings), settings), http=protocol, **server_options(settings))
        return
    # Worker processes rebuild the settings from the environment: hand them the resolved values.
    os.environ.update(settings.as_environment())
    # Metrics from every worker, summed at each scrape (prometheus-client's multiprocess mode).
    # The workers must see the variable before they import prometheus_client; a fresh directory
    # per server start, so no earlier run's values leak in.
    if not os.environ.get(MULTIPROCESS_ENV):
        directory = (settings.data_dir / "metrics").resolve()
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        os.environ[MULTIPROCESS_ENV] = str(directory)
    uvicorn.run(
        "thumbs.asgi:create_app_from_environment",
        factory=True,
        workers=settings.workers,
        http=protocol,
        **server_options(settings),
    )
