"""``thumbs worker``: consume the cross-process warm queue (a Redis Stream) until cancelled."""

from __future__ import annotations

import asyncio
import logging

from proxy.app import create_proxy
from thumbs.settings import Settings

log = logging.getLogger("thumbs.proxy")

NO_REDIS = (
    "THUMBS_REDIS_URL is not set, so there is no shared warm queue for a separate worker: "
    "the in-process queue is consumed inside `thumbs serve`. Set THUMBS_REDIS_URL to run workers."
)


async def run_worker(settings: Settings) -> None:
    if not settings.redis_url:
        log.warning(NO_REDIS)
        print(NO_REDIS)
        return
    proxy = create_proxy(settings, warm_consumer=True)
    async with proxy.component.lifespan():
        log.info("warm worker consuming %swarm", settings.redis_prefix)
        await asyncio.Event().wait()  # the consumer task runs until we are cancelled
