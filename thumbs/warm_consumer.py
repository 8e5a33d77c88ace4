"""The warm queue's consumer as the composition root runs it: outcomes go to the library rows.

The proxy makes thumbnails and knows nothing of images; the library knows rows and nothing
of queues. Here the two meet: each queued entry tagged with an image id (ingest tags them)
has its final outcome written to that image's row, by whichever process consumed it; an
entry tagged ``reply:{call}`` (a backfill waiting on the stream) has it pushed back to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

from databases import Database
from redis.asyncio import Redis

from httpkit.component import Component
from library_api.images import record_outcomes
from proxy.warm import Warmer
from proxy.warm_queue import Finished
from proxy.warm_types import WarmOutcome
from thumbs.settings import Settings
from thumbs.stream_warm import REPLY_TAG, push_reply

log = logging.getLogger("thumbs")
IMAGE_TAG = re.compile(r"[0-9]{1,18}")


def outcome_recorder(database: Database, settings: Settings, replies: Redis | None) -> Finished:
    async def record(source: str, tag: str | None, outcome: WarmOutcome) -> None:
        if tag is None:
            return  # a /warm call's entry: nobody to tell
        if tag.startswith(REPLY_TAG):  # a backfill waiting on the stream
            if replies is not None:
                await push_reply(replies, settings.redis_prefix, tag, outcome)
            return
        if IMAGE_TAG.fullmatch(tag):
            # Raising leaves a stream entry unacknowledged: a database outage delays the record, never loses it.
            await record_outcomes(database, settings, [(int(tag), source)], [outcome])

    return record


@contextlib.asynccontextmanager
async def consuming(warmer: Warmer, database: Database, settings: Settings) -> AsyncIterator[None]:
    replies = Redis.from_url(settings.redis_url, socket_timeout=5.0) if settings.redis_url else None
    task = asyncio.create_task(warmer.consume(outcome_recorder(database, settings, replies)),
                               name="thumbs-warm-consumer")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if replies is not None:
            await replies.aclose()


def consumer_component(warmer: Warmer, database: Database, settings: Settings) -> Component:
    """Place it after the library's component: its database is connected by then."""
    return Component(routes=[], lifespan=lambda: consuming(warmer, database, settings))
