"""Create and drop throwaway PostgreSQL databases (asyncpg, run synchronously)."""

from __future__ import annotations

import asyncio

import asyncpg


def _run(admin_url: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def create_database(admin_url: str, name: str) -> None:
    _run(admin_url, f'CREATE DATABASE "{name}"')


def drop_database(admin_url: str, name: str) -> None:
    _run(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
