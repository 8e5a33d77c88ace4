"""``uvicorn --factory tests.mechanisms.lease_app:create``: the proxy alone with a short single-flight lease.

The lease length is the proxy's own config (``ProxyConfig.lease_ms``, 5 s by default), not a
THUMBS_* setting; THUMBS_TEST_LEASE_MS shortens it so a test can have an origin slower than the
lease without waiting many seconds.
"""

from __future__ import annotations

import dataclasses
import os

from starlette.applications import Starlette

from proxy.app import create_proxy_app
from thumbs.configs import proxy_config
from thumbs.settings import Settings


def create() -> Starlette:
    config = proxy_config(Settings(_env_file=None))
    assert config.redis_url, "THUMBS_REDIS_URL must be set: leases live in Redis"
    short = dataclasses.replace(config, lease_ms=int(os.environ["THUMBS_TEST_LEASE_MS"]))
    return create_proxy_app(short, warm_consumer=False)
