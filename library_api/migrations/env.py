"""Alembic environment: sync sqlite3 for SQLite, asyncpg through an async engine for PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from library_api.db import VERSION_TABLE

# Any constant: serialises concurrent `thumbs migrate` runs on one PostgreSQL database.
PG_LOCK_KEY = 0x7468756D6273  # "thumbs"

url = context.config.get_main_option("sqlalchemy.url") or ""


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        context.run_migrations()


async def run_async() -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
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
