"""uvicorn factories for the bench: the product's composed app, or the proxy alone.

The composed app (`thumbs.asgi`) is what `thumbs serve` runs; while a part of it cannot be
imported the proxy benchmarks fall back to the proxy's own app, and the results say which.
"""

from __future__ import annotations

from starlette.applications import Starlette

from proxy.app import create_proxy_app
from thumbs.configs import proxy_config
from thumbs.settings import Settings

COMPOSED = "thumbs.asgi:create_app_from_environment"
PROXY_ONLY = "bench.asgi:proxy_app_from_environment"


def proxy_app_from_environment() -> Starlette:
    return create_proxy_app(proxy_config(Settings()), warm_consumer=False)


def entry_point() -> str:
    """The composed app when it imports, else the proxy alone."""
    try:
        import thumbs.app  # noqa: F401
    except ImportError:
        return PROXY_ONLY
    return COMPOSED
