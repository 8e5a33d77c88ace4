"""The warm queue's consumer as the composition root runs it: outcomes go to the library rows.

The proxy makes thumbnails and knows nothing of images; the library knows rows and nothing
of queues. Here the two meet: each queued entry tagged with an image id (ingest tags them)
has its final outcome written to that image's row, by whichever process consumed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

from databases import Database

from library_api.images import record_outcomes
from proxy.warm import Warmer
from proxy.warm_queue import Finished
from proxy.warm_types import WarmOutcome
from thumbs.component import Component
from thumbs.settings import Settings

log = logging.getLogger("thumbs")
IMAGE_TAG = re.compile(r"[0-9]{1,18}")


def row_recorder(database: Database, settings: Settings) -> Finished:
    async def record(source: str, tag: str | None, outcome: WarmOutcome) -> None:
        if tag is None or not IMAGE_TAG.fullmatch(tag):
            return  # a /warm call's entry: no row to update
        # Raising leaves a stream entry unacknowledged, so a database outage delays the record, never loses it.
        await record_outcomes(database, settings, [(int(tag), source)], [outcome])

    return record


@contextlib.asynccontextmanager
async def consuming(warmer: Warmer, finished: Finished) -> AsyncIterator[None]:
    task = asyncio.create_task(warmer.consume(finished), name="thumbs-warm-consumer")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def consumer_component(warmer: Warmer, database: Database, settings: Settings) -> Component:
    """Place it after the library's component: its database is connected by then."""
    return Component(routes=[], lifespan=lambda: consuming(warmer, row_recorder(database, settings)))
