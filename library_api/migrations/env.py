"""Alembic environment: sync sqlite3 for SQLite, asyncpg through an async engine for PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from alembic import context
from sqlalchemy import Connection, create_engine, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from library_api.db import CONNECT_TIMEOUT, VERSION_TABLE, asyncpg_dsn

# Any constant: serialises concurrent `thumbs migrate` runs on one PostgreSQL database.
PG_LOCK_KEY = 0x7468756D6273  # "thumbs"

url = context.config.get_main_option("sqlalchemy.url") or ""


# How often a run waiting for another one's lock asks again.
LOCK_POLL_SECONDS = 0.2


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
    if connection.dialect.name != "postgresql":
        with context.begin_transaction():
            context.run_migrations()
        return
    # A session lock, held across the commit of an autocommit block (0012's CREATE INDEX
    # CONCURRENTLY), which a transaction's lock would not survive. Asked for by polling, each
    # ask its own short transaction: a run blocked inside a statement would hold a snapshot,
    # and a concurrent index build waits for every older snapshot to end (a deadlock with the
    # run holding the lock).
    while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": PG_LOCK_KEY}).scalar():
        connection.commit()
        time.sleep(LOCK_POLL_SECONDS)
    connection.commit()
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if not connection.invalidated:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})
            connection.commit()


async def run_async() -> None:
    # asyncpg parses the DSN itself, as the app's pool does (`asyncpg_dsn`). Given to SQLAlchemy,
    # each query parameter became a keyword asyncpg.connect() does not take (sslmode: a TypeError).
    dsn = asyncpg_dsn(url)
    engine = create_async_engine(
        "postgresql+asyncpg://", poolclass=pool.NullPool,
        async_creator=lambda: asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT),
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
elif url.startswith("sqlite"):
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        run(connection)
    engine.dispose()
else:
    asyncio.run(run_async())
