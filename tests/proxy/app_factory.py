"""``uvicorn --factory tests.proxy.app_factory:create``: the proxy alone, configured by THUMBS_* env."""

from __future__ import annotations

from starlette.applications import Starlette

from proxy.app import create_proxy_app
from thumbs.configs import proxy_config
from thumbs.settings import Settings


def create() -> Starlette:
    return create_proxy_app(proxy_config(Settings(_env_file=None)), warm_consumer=False)
