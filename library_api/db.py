"""The database behind the API: one URL from its configuration, mapped for `databases` and Alembic."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import math
import re
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import sqlalchemy as sa
from databases import Database
from sqlalchemy.dialects import postgresql, sqlite

from library_api.config import LibraryConfig

T = TypeVar("T")

# Our own Alembic version table, so a product database that already uses Alembic is not confused.
VERSION_TABLE = "library_api_alembic_version"


class NotMigrated(RuntimeError):
    """The database is not at this version's schema: `thumbs migrate` first (``migrate.check_migrated``)."""


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


# Query parameters `databases` reads itself; asyncpg would take any other as a server setting.
DATABASES_OPTIONS = frozenset({"min_size", "max_size", "ssl"})


def asyncpg_dsn(url: str) -> str:
    """The PostgreSQL URL for asyncpg to parse whole: libpq's parameters (sslmode, sslrootcert,
    host=/socket/dir, ...) hold. `databases` passes on only host, port, user, password, database
    and its own options, so ``sslmode=verify-full`` used to connect unverified (asyncpg's default
    ``prefer``), and ``sslmode=require`` to a server without TLS in plain text."""
    parts = urlsplit(databases_url(url))
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True)
             if name not in DATABASES_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(query)))


def alembic_url(url: str) -> str:
    """Alembic runs sync on SQLite (stdlib sqlite3) and async on PostgreSQL (asyncpg)."""
    if is_sqlite(url):
        return url.replace("sqlite+aiosqlite://", "sqlite://", 1)
    return "postgresql+asyncpg://" + databases_url(url).removeprefix("postgresql://")


class LenientTextConnection(sqlite3.Connection):
    """SQLite text that is not valid UTF-8 (another writer's bytes) reads with U+FFFD, not an error.

    sqlite3's default raises OperationalError for such a value, which would make every page
    holding that row a 503 for good.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.text_factory = _lenient_text


def _lenient_text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def sqlite_text_to_blob_if_not_utf8(connection: sqlite3.Connection, table: str, column: str) -> None:
    """Migrations: a text value that is not UTF-8 becomes a blob of the same bytes (nothing lost).

    sqlite3 cannot hand such text to a Python function (the call fails before it starts), so a
    migration step that reads the column with one would abort on it.
    """
    connection.create_function("thumbs_is_utf8", 1, is_utf8, deterministic=True)
    connection.execute(
        f"UPDATE {table} SET {column} = CAST({column} AS BLOB) "
        f"WHERE typeof({column}) = 'text' AND NOT thumbs_is_utf8(CAST({column} AS BLOB))"
    )


# How long a PostgreSQL statement may run, and a new connection take, before the request is a
# 503 (a TimeoutError). Without a bound a table locked by a migration or an operator, or a server
# that stopped answering (a frozen host, a partition that drops packets), held the request and its
# pool connection forever: the listing never answered. SQLite's busy timeout is the same 15 s.
QUERY_TIMEOUT = 15.0
CONNECT_TIMEOUT = 10.0


# The database cannot serve this request now, though the request is fine: a 503 the client may
# retry (the CLI: one line, exit 1). A read-only PostgreSQL (a standby after a failover,
# default_transaction_read_only) answers writes with ReadOnlySQLTransactionError, which was a 500
# for ingest and the backfill's POST and a traceback from `thumbs backfill`.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, and TimeoutError (QUERY_TIMEOUT, CONNECT_TIMEOUT)
    sa.exc.OperationalError,
    sqlite3.OperationalError,  # locked past the busy timeout, a read-only file, disk I/O
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,  # shutting down, starting up, a statement cancelled
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.TransactionRollbackError,  # deadlock, serialization failure: a retry succeeds
    asyncpg.LockNotAvailableError,  # lock_timeout
)


def create_database(settings: LibraryConfig) -> Database:
    url = settings.database_url
    if is_sqlite(url):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
        # Writers wait for each other (WAL mode is set by the migrations) instead of failing.
        return Database(databases_url(url), timeout=QUERY_TIMEOUT, factory=LenientTextConnection)
    # asyncpg's own: `command_timeout` bounds each statement (it asks the server to cancel it),
    # `timeout` the connect and startup handshake (its default is 60 s).
    return Database(
        databases_url(url), dsn=asyncpg_dsn(url), min_size=1, max_size=10, command_timeout=QUERY_TIMEOUT,
        timeout=CONNECT_TIMEOUT,
    )


def insert_for(database: Database) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return sqlite.insert if database.url.dialect == "sqlite" else postgresql.insert


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back naive; they are stored in UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def sqlite_timestamp_text(value: dt.datetime) -> str:
    """A UTC datetime as SQLAlchemy writes it on SQLite (fixed width, so text order is time order)."""
    value = as_utc(value)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


def stored_as_read(stored: object, read: dt.datetime | None) -> bool:
    """Does the database sort ``stored`` exactly where the datetime ``read`` from it would sort?

    PostgreSQL hands back a timestamptz, which is the value compared. SQLite compares what is
    stored (text, or numbers, which sort below all text), so only the canonical text sorts
    like the datetime a cursor binds; anything else a writer slipped past the triggers does not.
    """
    if read is None or stored is None:
        return read is None and stored is None
    return isinstance(stored, dt.datetime) or stored == sqlite_timestamp_text(read)


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Epoch magnitudes: below 1e11 it is seconds (up to year 5138), then ms, microseconds, ns.
_EPOCH_UNITS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))
_TEXT_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y", "%Y-%m-%d %H:%M:%S %z")


def parse_timestamp(value: object) -> dt.datetime | None:
    """Any legacy ``created_at`` value as an aware UTC datetime; None when it cannot be read.

    Reads datetimes (naive = UTC), ISO 8601 and SQL timestamp text, epoch seconds,
    milliseconds (JavaScript), micro- and nanoseconds as numbers or numeric text, RFC 2822
    text, and bytes holding any of those. Never raises: junk is None, not an error.
    """
    try:
        if isinstance(value, dt.datetime):
            return as_utc(value)
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, int | float):
            return _from_epoch(float(value))
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).decode("utf-8")
        if isinstance(value, str):
            return _from_text(value.strip())
    except (ValueError, TypeError, OverflowError, OSError, UnicodeDecodeError):
        return None
    return None


def _from_epoch(number: float) -> dt.datetime | None:
    if not math.isfinite(number):
        return None
    for limit, per_second in _EPOCH_UNITS:
        if abs(number) < limit:
            return EPOCH + dt.timedelta(seconds=number / per_second)
    return None


def _from_text(text: str) -> dt.datetime | None:
    if not text or len(text) > 64:
        return None
    if _NUMBER.fullmatch(text):
        return _from_epoch(float(text))
    try:
        return as_utc(dt.datetime.fromisoformat(text))
    except ValueError:
        pass
    for layout in _TEXT_FORMATS:
        try:
            return as_utc(dt.datetime.strptime(text, layout))
        except ValueError:
            continue
    try:
        return as_utc(email.utils.parsedate_to_datetime(text))
    except (ValueError, TypeError, IndexError):
        return None


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
