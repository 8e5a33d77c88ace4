"""Apply the Alembic migrations: ``thumbs migrate``, and `thumbs serve` start on SQLite."""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from databases import Database

from library_api.config import LibraryConfig
from library_api.db import (
    UNAVAILABLE_ERRORS,
    VERSION_TABLE,
    NotMigrated,
    alembic_url,
    create_database,
    is_sqlite,
    sqlite_path,
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(settings: LibraryConfig) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's config is ConfigParser-backed: a literal % must be doubled.
    config.set_main_option("sqlalchemy.url", alembic_url(settings.database_url).replace("%", "%%"))
    return config


def run_migrations(settings: LibraryConfig) -> None:
    """Upgrade to the newest schema; a no-op when already there. Never deletes a row."""
    url = settings.database_url
    # PostgreSQL runs serialise on an advisory lock (see env.py); SQLite ones on a file lock.
    with sqlite_file_lock(sqlite_path(url)) if is_sqlite(url) else nullcontext():
        if is_sqlite(url):
            use_wal(sqlite_path(url))
        command.upgrade(alembic_config(settings), "head")


def head_revision() -> str:
    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


async def check_migrated(database: Database) -> None:
    """Raise :class:`NotMigrated` unless ``database`` is at the head revision."""
    try:
        current = await database.fetch_val(f"SELECT version_num FROM {VERSION_TABLE}")
    except UNAVAILABLE_ERRORS:
        raise  # down, not unmigrated: the caller says so
    except Exception as exc:
        raise NotMigrated("the library database is not migrated: run `thumbs migrate`") from exc
    if current != head_revision():
        raise NotMigrated(
            f"the library database is at revision {current}, this version needs {head_revision()}: run `thumbs migrate`"
        )


async def require_migrated(settings: LibraryConfig) -> None:
    """`thumbs serve`/`stack` before starting workers: a database they could not start on is one line.

    Inside uvicorn's lifespan the same failure is a 60-line traceback and exit 3, per worker.
    """
    database = create_database(settings)
    await database.connect()
    try:
        await check_migrated(database)
    finally:
        await database.disconnect()


def use_wal(database: Path) -> None:
    """Readers never wait for a writer; persistent, and impossible inside a transaction."""
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


@contextmanager
def sqlite_file_lock(database: Path) -> Iterator[None]:
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".migrate.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
