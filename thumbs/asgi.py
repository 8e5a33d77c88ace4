"""ASGI entry point for process managers (uvicorn --factory, gunicorn, the stack's workers)."""

from __future__ import annotations

from starlette.applications import Starlette

from thumbs.app import create_app
from thumbs.settings import Settings


def create_app_from_environment() -> Starlette:
    settings = Settings()
    missing = settings.missing_write_tokens()
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not set: write endpoints would run open")
    return create_app(settings)
