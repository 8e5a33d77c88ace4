"""``uvicorn --factory tests.mechanisms.lease_app:create``: the proxy alone with a short single-flight lease.

The lease length is not a setting (5 s in production); THUMBS_TEST_LEASE_MS shortens it so a
test can have an origin slower than the lease without waiting many seconds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from proxy.app import create_proxy
from thumbs.configs import proxy_config
from thumbs.settings import Settings


def create() -> Starlette:
    proxy = create_proxy(proxy_config(Settings(_env_file=None)), warm_consumer=False)
    assert proxy.service.leases is not None, "THUMBS_REDIS_URL must be set: leases live in Redis"
    proxy.service.leases.millis = int(os.environ["THUMBS_TEST_LEASE_MS"])

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with proxy.component.lifespan():
            yield

    return Starlette(
        routes=list(proxy.component.routes),
        lifespan=lifespan,
        exception_handlers=dict(proxy.component.exception_handlers),
    )
