"""ASGI entry point for process managers (uvicorn --factory, gunicorn, the stack's workers)."""

from __future__ import annotations

from starlette.applications import Starlette

from thumbs.app import create_app
from thumbs.settings import Settings


def create_app_from_environment() -> Starlette:
    return create_app(Settings())
