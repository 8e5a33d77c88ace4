"""The one decision on how the library warms thumbnails (used by `serve`, the stack and `backfill`).

- With ``THUMBS_REDIS_URL``: ingest appends to the durable warm stream before answering, and
  the backfill waits on the same stream (its consumers reply); any number of `thumbs worker`
  processes, or serving processes with a consumer, do the work and write the rows.
- Without Redis, with ``THUMBS_WARM_URL``: the backfill asks another process's ``POST /warm``
  to generate and wait; ingest uses this process's in-memory queue.
- Neither: everything in this one process (the embedded default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from library_api.warm_client import HttpWarmClient
from proxy.warm import Warmer
from proxy.warm_types import WarmClient
from thumbs.settings import Settings
from thumbs.stream_warm import StreamWarmClient


class Closable(Protocol):
    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class WarmPaths:
    backfill: WarmClient  # generate and wait, for the backfill job
    durable: WarmClient | None  # ingest enqueues here when set (it outlives this process)
    owned: Closable | None  # a client this process opened and must close

    @asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self.owned is not None:
                await self.owned.aclose()


def warm_paths(settings: Settings, warmer: Warmer) -> WarmPaths:
    if settings.redis_url:
        stream = StreamWarmClient(warmer, settings.redis_url, settings.redis_prefix)
        return WarmPaths(backfill=stream, durable=warmer, owned=stream)
    if settings.warm_url:
        remote = HttpWarmClient(settings.warm_url, settings.warm_token)
        return WarmPaths(backfill=remote, durable=None, owned=remote)
    return WarmPaths(backfill=warmer, durable=None, owned=None)
