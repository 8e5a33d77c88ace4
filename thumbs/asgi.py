"""ASGI entry point for process managers (uvicorn --factory, gunicorn, the stack's workers)."""

from __future__ import annotations

from thumbs.app import create_app
from thumbs.limits import ClientLimits, apply_header_timeout, limited
from thumbs.settings import Settings


def create_app_from_environment() -> ClientLimits:
    settings = Settings()
    missing = settings.missing_write_tokens()
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not set: write endpoints would run open")
    apply_header_timeout(settings.header_timeout)  # this worker's connections
    return limited(create_app(settings), settings)
