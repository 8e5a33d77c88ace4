"""``thumbs worker``: consume the durable warm queue (a Redis Stream) until cancelled.

Any number of workers share the stream's consumer group. Each makes the thumbnail into the
shared tiers and writes the outcome to the image's row in the library database.
"""

from __future__ import annotations

import asyncio
import logging

from library_api.db import create_database
from proxy.app import create_proxy
from thumbs.configs import proxy_config
from thumbs.settings import Settings
from thumbs.warm_consumer import consuming

log = logging.getLogger("thumbs")

NO_REDIS = (
    "THUMBS_REDIS_URL is not set, so there is no shared warm queue for a separate worker: "
    "the in-process queue is consumed inside `thumbs serve`. Set THUMBS_REDIS_URL to run workers."
)


async def run_worker(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pyvips").setLevel(logging.WARNING)  # libvips narrates every operation at INFO
    if not settings.redis_url:
        raise ValueError(NO_REDIS)  # `thumbs worker` refuses before it gets here
    proxy = create_proxy(proxy_config(settings), warm_consumer=False)
    database = create_database(settings)
    async with proxy.component.lifespan():
        await database.connect()
        try:
            async with consuming(proxy.warmer, database, settings):
                print(f"thumbs worker: consuming {settings.redis_prefix}warm", flush=True)
                await asyncio.Event().wait()  # until cancelled
        finally:
            await database.disconnect()
