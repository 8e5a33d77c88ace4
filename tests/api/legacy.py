"""Fresh legacy databases for tests: a product's own ``pipeline_step_outputs``, filled as its writers left it."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from tests.api.conftest import in_thread
from tests.conftest import PG_ADMIN_URL
from tests.support.pg import create_database, drop_database

# The legacy shapes: SQLite takes any value in any column; PostgreSQL has real column types.
SQLITE_TABLE = """CREATE TABLE pipeline_step_outputs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT, created_at TIMESTAMP, pipeline_id TEXT, step TEXT)"""
PG_TABLE = """CREATE TABLE pipeline_step_outputs (
    id serial PRIMARY KEY, url text, created_at {created_at_type}, pipeline_id integer, step text)"""

Row = tuple[Any, Any, Any, Any]  # url, created_at, pipeline_id, step


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'legacy-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"thumbs_legacy_{uuid.uuid4().hex[:10]}"
    in_thread(lambda: create_database(PG_ADMIN_URL, name))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        in_thread(lambda: drop_database(PG_ADMIN_URL, name))


async def create_legacy_table(
    url: str, rows: Sequence[Row], *, created_at_cast: str = "", created_at_type: str = "timestamp DEFAULT now()"
) -> None:
    """The table and its rows; on PostgreSQL ``created_at_cast`` (e.g. ``::text::timestamp``) lets text in."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split(":///", 1)[1])
        try:
            connection.execute(SQLITE_TABLE)
            connection.executemany(
                "INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) VALUES (?, ?, ?, ?)", rows
            )
            connection.commit()
        finally:
            connection.close()
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute(PG_TABLE.format(created_at_type=created_at_type))
        await pg.executemany(
            "INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) "
            f"VALUES ($1, $2{created_at_cast}, $3, $4)",
            rows,
        )
    finally:
        await pg.close()


async def reset_postgresql(url: str) -> None:
    """Back to an empty database (one per test is slow for many examples)."""
    pg = await asyncpg.connect(url)
    try:
        await pg.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await pg.close()
