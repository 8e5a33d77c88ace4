"""Run the composed app under uvicorn."""

from __future__ import annotations

import os

import uvicorn

from thumbs.app import create_app
from thumbs.settings import Settings


def uvicorn_config(settings: Settings, **overrides: object) -> dict[str, object]:
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "access_log": False,  # the proxy logs one structured line per generated thumbnail
        "proxy_headers": True,
        "server_header": False,
        **overrides,
    }


def run_server(settings: Settings) -> None:
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **uvicorn_config(settings))  # type: ignore[arg-type]
        return
    # Worker processes rebuild the settings from the environment: hand them the resolved values.
    os.environ.update(settings.as_environment())
    uvicorn.run(
        "thumbs.asgi:create_app_from_environment",
        factory=True,
        **uvicorn_config(settings, workers=settings.workers),  # type: ignore[arg-type]
    )
