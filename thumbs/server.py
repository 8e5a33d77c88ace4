"""Run the composed app under uvicorn."""

from __future__ import annotations

import os
from typing import TypedDict

import uvicorn

from thumbs.app import create_app
from thumbs.settings import Settings


class ServerOptions(TypedDict):
    host: str
    port: int
    log_level: str
    access_log: bool
    proxy_headers: bool
    server_header: bool


def server_options(settings: Settings) -> ServerOptions:
    """uvicorn's options for every way thumbs runs it (serve, demo, the stack's workers)."""
    return ServerOptions(
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,  # the proxy logs one structured line per generated thumbnail
        proxy_headers=True,
        server_header=False,
    )


def run_server(settings: Settings) -> None:
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **server_options(settings))
        return
    # Worker processes rebuild the settings from the environment: hand them the resolved values.
    os.environ.update(settings.as_environment())
    uvicorn.run(
        "thumbs.asgi:create_app_from_environment",
        factory=True,
        workers=settings.workers,
        **server_options(settings),
    )
