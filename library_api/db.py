"""The database behind the API: one URL from Settings, mapped for `databases` and Alembic."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from databases import Database
from sqlalchemy.dialects import postgresql, sqlite

from thumbs.settings import Settings

T = TypeVar("T")

# Our own Alembic version table, so a product database that already uses Alembic is not confused.
VERSION_TABLE = "library_api_alembic_version"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def databases_url(url: str) -> str:
    """`databases` wants ``postgresql://`` (asyncpg) or ``sqlite:///`` (aiosqlite)."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def alembic_url(url: str) -> str:
    """Alembic runs sync on SQLite (stdlib sqlite3) and async on PostgreSQL (asyncpg)."""
    if is_sqlite(url):
        return url.replace("sqlite+aiosqlite://", "sqlite://", 1)
    return "postgresql+asyncpg://" + databases_url(url).removeprefix("postgresql://")


def create_database(settings: Settings) -> Database:
    url = settings.database_url
    if is_sqlite(url):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
        # Writers wait for each other (WAL mode is set by the migrations) instead of failing.
        return Database(databases_url(url), timeout=15.0)
    return Database(databases_url(url), min_size=1, max_size=10)


def insert_for(database: Database) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return sqlite.insert if database.url.dialect == "sqlite" else postgresql.insert


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back naive; they are stored in UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class ShieldedWrites:
    """Run database calls so that cancelling the caller never cancels them mid-query.

    `databases` does not return a connection cancelled mid-query to its pool; a task that is
    cancelled while awaiting one of these gets CancelledError and the write completes
    anyway. ``drain`` waits for those still in flight (before disconnecting).
    """

    def __init__(self) -> None:
        self.pending: set[asyncio.Future[Any]] = set()

    async def __call__(self, operation: Awaitable[T]) -> T:
        future = asyncio.ensure_future(operation)
        self.pending.add(future)
        future.add_done_callback(self.pending.discard)
        return await asyncio.shield(future)

    async def drain(self) -> None:
        while self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
