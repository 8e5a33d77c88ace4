"""Seeding rows straight into the table, for tests about reading them back."""

from __future__ import annotations

import datetime as dt

from databases import Database

from library_api.images import url_hash
from library_api.schema import images

BASE_TIME = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


async def seed(database: Database, base_url: str, count: int, *, same_time_every: int = 1, start: int = 0) -> None:
    """``count`` images; every ``same_time_every`` consecutive ones share a created_at (ties)."""
    rows = [
        {
            "url": f"{base_url}/seed/{start + n}.jpg",
            "url_hash": url_hash(f"{base_url}/seed/{start + n}.jpg"),
            "created_at": BASE_TIME + dt.timedelta(seconds=(start + n) // same_time_every),
            "pipeline_id": "seed",
            "step": "s",
        }
        for n in range(count)
    ]
    await database.execute_many(images.insert(), rows)
