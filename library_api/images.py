"""Reading and writing images: the page query, the exact total, ingest, warm outcomes."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from databases import Database
from databases.interfaces import Record
from sqlalchemy.ext.compiler import compiles

from library_api.config import LibraryConfig
from library_api.db import insert_for, parse_timestamp, stored_as_read, utcnow
from library_api.paging import MAX_LABEL_LENGTH, PageRequest, Position
from library_api.schema import FAILED, IMAGES_COUNTER, PENDING, READY, counters, images
from library_api.sources import MAX_URL_LENGTH, source_refusal
from proxy.urls import CELL, CELL_2X, thumbnail_url
from proxy.warm_types import WarmOutcome

# created_at as the database holds it (no reader's parsing): where the row sorts (see position_of).
STORED_CREATED_AT = sa.type_coerce(images.c.created_at, sa.types.NullType()).label("stored_created_at")


def listed_label(column: sa.Column[str]) -> sa.Label[str]:
    """A label as the listing reads it: NULL when longer than MAX_LABEL_LENGTH characters.

    A legacy writer may have stored anything there (a JSON blob in ``step``); the listing sent it
    whole, so 50 rows with a 1 MB step were a 50 MB page (114 ms on SQLite). Longer than what
    ingest stores and the filters take, such a value can never be filtered by either. Decided
    in the database, so the value is never sent to this process.
    """
    # The size in bytes first: PostgreSQL knows it without reading a TOASTed value (length()
    # decompresses it: 50 such rows 133 -> 238 ms); a character is at most 4 bytes.
    huge = ByteLength(column) > sa.literal_column(str(4 * MAX_LABEL_LENGTH))
    short = sa.func.length(column) <= sa.literal_column(str(MAX_LABEL_LENGTH))
    return sa.case((huge, sa.null()), (short, column), else_=sa.null()).label(column.name)


class ByteLength(sa.sql.functions.GenericFunction[int]):
    """The value's size in bytes: octet_length on PostgreSQL, the length of its bytes on SQLite."""

    type = sa.Integer()
    name = "octet_length"
    inherit_cache = True


@compiles(ByteLength, "sqlite")
def _compile_byte_length_sqlite(element: ByteLength, compiler: Any, **kw: Any) -> str:
    return f"length(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"


LISTED = [
    images.c.id,
    images.c.url,
    images.c.created_at,
    STORED_CREATED_AT,
    images.c.width,
    images.c.height,
    images.c.color,
    listed_label(images.c.pipeline_id),
    listed_label(images.c.step),
    images.c.thumbnail_status,
]
NEWEST_FIRST = (images.c.created_at.desc(), images.c.id.desc())
# Rows without a url are kept (marked failed by migration 0005) but are not images to pick.
HAS_URL = images.c.url.is_not(None)


def web_address_sql(column: str, dialect: str) -> str:
    """1 when the url is one a client can load, else 0 (never NULL): http(s) (any case), or a path
    on the picker's own origin (``/...``, as the picker's ``isWebAddress`` takes it), of at most
    MAX_URL_LENGTH bytes.

    A legacy row may hold anything (``javascript:``, ``file:``, a 1 MB ``data:`` URL, junk):
    such rows are kept but not listed, like rows without a url. Plain SQL evaluated on read, so
    rows other programs write are judged the same way. The size is in bytes, which both
    databases know without reading the text (``length`` of text walks it); the common case, a
    lower-case ``https://``, is decided first. Rows: 0.07 us each on PostgreSQL (a ``lower`` on
    every row: 0.38 us, which made ``offset=9000`` 1.4 -> 4.8 ms).
    """
    size = f"octet_length({column})" if dialect == "postgresql" else f"length(CAST({column} AS BLOB))"
    return (
        f"CASE WHEN {size} > {MAX_URL_LENGTH} THEN 0 "
        f"WHEN substr({column}, 1, 8) = 'https://' OR substr({column}, 1, 7) = 'http://' THEN 1 "
        f"WHEN lower(substr({column}, 1, 8)) = 'https://' OR lower(substr({column}, 1, 7)) = 'http://' "
        f"OR (lower(substr({column}, 1, 1)) = '/' AND lower(substr({column}, 1, 2)) <> '/\\') THEN 1 ELSE 0 END"
    )


def unlisted_sql(dialect: str) -> str:
    """Rows not listed (url NULL included: the CASE gives 0): migration 0011's partial index
    predicate, spelled the same, so both planners count them from that index."""
    return f"{web_address_sql('url', dialect)} = 0"


class WebAddress(sa.sql.expression.ColumnElement[bool]):
    """The listing's condition on the url, in the dialect's own SQL (see :func:`web_address_sql`).

    "<> 0", the exact complement of :func:`unlisted_sql`, not "= 1": PostgreSQL guesses 0.5 % of
    rows for "= 1" on an expression and left the (created_at, id) index for a sort
    (offset=9000 on 200,000 rows: 64 ms instead of 1.4).

    Typed NullType, not Boolean: SQLAlchemy writes a Boolean expression in a SQLite WHERE as
    "... <> 0 = 1" (SQLite has no boolean type), which no longer matches the partial indexes
    stating "... <> 0" (migration 0012), so SQLite scanned the table for a filtered page."""

    type: Any = sa.types.NullType()
    inherit_cache = True


@compiles(WebAddress)
def _compile_web_address(element: WebAddress, compiler: Any, **kw: Any) -> str:
    return f"{web_address_sql(f'{images.name}.url', compiler.dialect.name)} <> 0"


LISTABLE = sa.and_(HAS_URL, WebAddress())
NEWER_COUNT_CAP = 10_000
# One round trip, and text: compiling the same Core expression on every page costs more than running it.
TOTAL = {
    dialect: sa.text(
        f"SELECT (SELECT value FROM {counters.name} WHERE name = '{IMAGES_COUNTER}') "
        f"- (SELECT count(*) FROM {images.name} WHERE {unlisted_sql(dialect)})"
    )
    for dialect in ("postgresql", "sqlite")
}
COLOR = re.compile(r"#[0-9a-f]{6}")  # the contract's pattern; anything else a legacy writer left is dropped

# The listing order is two segments: dated images newest first (one backward range of the
# (created_at, id) index), then undated ones (created_at NULL: legacy junk) by id, newest
# first. Two plain queries instead of one "NULLS LAST" sort keep both on an index on
# PostgreSQL and SQLite alike. A bound is a condition per segment: True is "all of it",
# False "none of it".
Bound = sa.ColumnElement[bool] | bool


@dataclass(frozen=True)
class Page:
    rows: list[Record]
    has_more: bool


@dataclass(frozen=True)
class Segments:
    dated: list[sa.ColumnElement[bool]] | None  # None: nothing from this segment
    undated: list[sa.ColumnElement[bool]] | None


def id_value(value: int) -> sa.ColumnElement[int]:
    """An id from a request, typed BIGINT in the SQL itself.

    A legacy ``serial`` id is int4: a bare parameter would be typed int4 by PostgreSQL and a
    cursor id above 2**31 - 1 would fail to encode (a 500). int4-versus-int8 comparisons are in
    the same btree operator family, so the (created_at, id) index still serves them.
    """
    return sa.cast(sa.literal(value, sa.BigInteger()), sa.BigInteger())


def _key_vs(position: Position) -> tuple[sa.Tuple, sa.Tuple]:
    key = sa.tuple_(images.c.created_at, images.c.id)
    if position.anchored:
        # Junk no reader parses but the database sorts among the dates: compare with the value itself.
        stored = sa.select(images.c.created_at).where(images.c.id == id_value(position.id)).scalar_subquery()
        return key, sa.tuple_(stored, id_value(position.id))
    assert position.created_at is not None
    return key, sa.tuple_(sa.literal(position.created_at, images.c.created_at.type), id_value(position.id))


def undated(position: Position) -> bool:
    return position.created_at is None and not position.anchored


def below(position: Position) -> tuple[Bound, Bound]:
    """Strictly after ``position`` in listing order: (dated bound, undated bound)."""
    if undated(position):
        return False, images.c.id < id_value(position.id)
    key, at = _key_vs(position)
    return key < at, True


def at_or_below(position: Position) -> tuple[Bound, Bound]:
    if undated(position):
        return False, images.c.id <= id_value(position.id)
    key, at = _key_vs(position)
    return key <= at, True


def above(position: Position) -> tuple[Bound, Bound]:
    """Strictly before ``position`` in listing order (newer)."""
    if undated(position):
        return True, images.c.id > id_value(position.id)
    key, at = _key_vs(position)
    return key > at, False


async def resolve_position(database: Database, position: Position) -> Position:
    """A position without a date is undated unless its row's stored created_at is not NULL.

    Such a row (junk a writer slipped past the triggers) sorts among the dated rows, so the
    walk must go on from its stored value there, not jump to the undated rows (which would
    hide every dated row below it). One primary-key lookup, only for cursors without a date.
    If the row was deleted meanwhile, the position is taken as undated.
    """
    if position.created_at is not None:
        return position
    stored = await database.fetch_val(
        sa.select(sa.literal_column("1")).where(images.c.id == id_value(position.id), images.c.created_at.is_not(None))
    )
    return dataclasses.replace(position, anchored=stored is not None)


async def resolve_request(database: Database, request: PageRequest) -> PageRequest:
    """The request with each of its positions resolved (see :func:`resolve_position`)."""
    return dataclasses.replace(
        request,
        after=await resolve_optional(database, request.after),
        until=await resolve_optional(database, request.until),
        newer_than=await resolve_optional(database, request.newer_than),
    )


async def resolve_optional(database: Database, position: Position | None) -> Position | None:
    return None if position is None else await resolve_position(database, position)


def segments(*bounds: tuple[Bound, Bound]) -> Segments:
    dated: list[sa.ColumnElement[bool]] | None = [LISTABLE, images.c.created_at.is_not(None)]
    undated: list[sa.ColumnElement[bool]] | None = [LISTABLE, images.c.created_at.is_(None)]
    for dated_bound, undated_bound in bounds:
        dated = _narrow(dated, dated_bound)
        undated = _narrow(undated, undated_bound)
    return Segments(dated, undated)


def _narrow(conditions: list[sa.ColumnElement[bool]] | None, bound: Bound) -> list[sa.ColumnElement[bool]] | None:
    if conditions is None or bound is False:
        return None
    if bound is True:
        return conditions
    assert not isinstance(bound, bool)
    return [*conditions, bound]


def request_segments(request: PageRequest) -> Segments:
    bounds = []
    if request.after is not None:
        bounds.append(below(request.after))
    if request.until is not None:
        bounds.append(at_or_below(request.until))
    if request.newer_than is not None:
        bounds.append(above(request.newer_than))
    return segments(*bounds, *label_bounds(request))


def label_bounds(request: PageRequest) -> list[tuple[Bound, Bound]]:
    """The pipeline and step filters, the same condition on both segments.

    With the length condition of the labels' partial indexes (migration 0009), as a literal: a
    filter value is at most MAX_LABEL_LENGTH long, so it changes no result, and the planners use
    a partial index only when the query states its condition (SQLite: with the same constant)."""
    bounds: list[tuple[Bound, Bound]] = []
    for column, value in ((images.c.pipeline_id, request.pipeline_id), (images.c.step, request.step)):
        if value is not None:
            condition = sa.and_(
                column == value, sa.text(f"length({images.name}.{column.name}) <= {MAX_LABEL_LENGTH}")
            )
            bounds.append((condition, condition))
    return bounds


async def fetch_page(database: Database, request: PageRequest) -> Page:
    wanted = request.limit + 1
    parts = request_segments(request)
    rows: list[Record] = []
    if parts.dated is not None:
        query = sa.select(*LISTED).where(*parts.dated).order_by(*NEWEST_FIRST).limit(wanted)
        rows = list(await database.fetch_all(query.offset(request.skip) if request.skip else query))
    if len(rows) < wanted and parts.undated is not None:
        skip = 0
        if not rows and request.skip:
            # The offset reaches past every dated image: skip the rest among the undated. That
            # count is at most the offset, the same walk the offset query just did.
            dated = 0 if parts.dated is None else await count(database, parts.dated)
            skip = max(request.skip - dated, 0)
        query = sa.select(*LISTED).where(*parts.undated).order_by(images.c.id.desc()).limit(wanted - len(rows))
        rows += await database.fetch_all(query.offset(skip) if skip else query)
    return Page(rows=rows[: request.limit], has_more=len(rows) > request.limit)


async def count(database: Database, conditions: list[sa.ColumnElement[bool]], cap: int | None = None) -> int:
    inner: sa.Select[Any] = sa.select(sa.literal_column("1")).select_from(images).where(*conditions)
    if cap is not None:
        inner = inner.limit(cap)
    value = await database.fetch_val(sa.select(sa.func.count()).select_from(inner.subquery()))
    return int(value or 0)


async def count_newer(
    database: Database, position: Position, cap: int = NEWER_COUNT_CAP, request: PageRequest | None = None
) -> int:
    """How many listed images (matching the request's filters) are strictly newer than ``position``, up to ``cap``."""
    parts = segments(above(position), *(label_bounds(request) if request is not None else []))
    total = 0
    for conditions in (parts.dated, parts.undated):
        if conditions is not None and total < cap:
            total += await count(database, conditions, cap - total)
    return total


async def count_filtered(database: Database, request: PageRequest) -> int:
    """The exact number of listed images matching the request's filters (a COUNT: filters have no counter)."""
    parts = segments(*label_bounds(request))
    return sum([await count(database, conditions) for conditions in (parts.dated, parts.undated)
                if conditions is not None])


async def fetch_total(database: Database) -> int:
    """Kept exact by triggers (migration 0003): one primary-key lookup, never a COUNT(*).

    Minus the rows not listed (no url, or one that is no web address): a count on the partial
    index of just those (migration 0011).
    """
    value = await database.fetch_val(TOTAL["postgresql" if database.url.dialect == "postgresql" else "sqlite"])
    return max(int(value or 0), 0)


def position_of(row: Record) -> Position:
    """The row's place in the listing, as a cursor carries it.

    A stored value that does not sort where its reading would (junk, a number on SQLite) gets
    no date here: the next request finds the row by id and compares with what is stored.
    """
    created_at = parse_timestamp(row["created_at"])
    if not stored_as_read(row["stored_created_at"], created_at):
        created_at = None
    return Position(created_at, int(row["id"]))


def listed_thumbnail_url(url: object, status: object, settings: LibraryConfig) -> str | None:
    """The signed thumbnail URL, or None when the proxy would refuse the source (legacy junk)."""
    if not isinstance(url, str):
        return None
    if status != READY and source_refusal(url, settings.allowed_sources) is not None:
        return None
    return thumbnail_url(url, settings.secret, settings.public_base_url)


def image_json(row: Record, settings: LibraryConfig) -> dict[str, Any]:
    # The thumbnail URL is computed now, so key rotation and a new base URL need no data migration.
    # Every value is read defensively: a legacy writer may have put anything in any column.
    created_at = parse_timestamp(row["created_at"])
    thumbnail = listed_thumbnail_url(row["url"], row["thumbnail_status"], settings)
    return {
        "id": int(row["id"]),
        "url": text_or_none(row["url"]),
        "thumbnail_url": thumbnail,
        # The picker's square cells at 1x and 2x (srcset), made with the thumbnail at ingest.
        "cell_thumbnail_url": None if thumbnail is None else thumbnail_url(
            row["url"], settings.secret, settings.public_base_url, CELL),
        "cell_thumbnail_url_2x": None if thumbnail is None else thumbnail_url(
            row["url"], settings.secret, settings.public_base_url, CELL_2X),
        "created_at": None if created_at is None else created_at.isoformat(),
        "width": size_or_none(row["width"]),
        "height": size_or_none(row["height"]),
        "color": row["color"] if isinstance(row["color"], str) and COLOR.fullmatch(row["color"]) else None,
        "pipeline_id": text_or_none(row["pipeline_id"]),
        "step": text_or_none(row["step"]),
        "thumbnail_status": row["thumbnail_status"] if row["thumbnail_status"] in (PENDING, READY, FAILED) else PENDING,
    }


def text_or_none(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def size_or_none(value: object) -> int | None:
    return value if type(value) is int and 0 < value < 2**31 else None


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


# Rows without a url_hash (written straight into the table), by the start of their url: migration
# 0013's partial index, stated as its expression and WHERE (literals: a bound parameter in substr
# would not match the index expression).
UNHASHED_PREFIX = 200
UNHASHED_PREFIX_SQL: sa.ColumnClause[str] = sa.literal_column(
    f"substr({images.name}.url, 1, {UNHASHED_PREFIX})", sa.Text()
)
# "coalesce(...) = ''" rather than "url_hash IS NULL": SQLite took the unique url_hash index for
# IS NULL (every row without a hash) over this one. No hash is empty text.
UNHASHED = (sa.text(f"coalesce({images.name}.url_hash, '') = ''"), images.c.url.is_not(None))


async def unhashed_row(database: Database, spellings: Sequence[str]) -> Record | None:
    """The lowest-id row without a url_hash whose url is one of ``spellings``, as stored."""
    prefixes = sorted({spelling[:UNHASHED_PREFIX] for spelling in spellings})
    query = sa.select(*LISTED).where(
        *UNHASHED, UNHASHED_PREFIX_SQL.in_(prefixes), images.c.url.in_(sorted(set(spellings)))
    )
    # No ORDER BY ... LIMIT: the planner might walk the primary key for it instead of the index.
    rows = await database.fetch_all(query)
    return min(rows, key=lambda row: int(row["id"]), default=None)


async def insert_image(
    database: Database,
    *,
    url: str,
    pipeline_id: str,
    step: str,
    width: int | None,
    height: int | None,
    spellings: Sequence[str] = (),
) -> tuple[Record, bool]:
    """Store one image unless its URL is already stored; returns (row, created).

    Found by ``url_hash``, or else among the rows without one (written straight into the table:
    an operator's INSERT, another program) by ``url`` or one of ``spellings`` exactly as stored;
    such a row is given the hash, so the next ingest finds it by that (and no second row is
    made). The hash is given only where it is still NULL; when a concurrent ingest stored the
    url first (the unique index refuses a second holder), its row is the answer.
    """
    digest = url_hash(url)
    legacy = await unhashed_row(database, [url, *spellings])
    if legacy is not None:
        claim = sa.update(images).where(images.c.id == legacy["id"], images.c.url_hash.is_(None))
        try:
            await database.execute(claim.values(url_hash=digest))
        except (sqlite3.IntegrityError, asyncpg.UniqueViolationError):
            pass  # a concurrent ingest stored or claimed this url first: that row is the one
        existing = await database.fetch_one(sa.select(*LISTED).where(images.c.url_hash == digest))
        if existing is not None:
            return existing, False
        # The row was changed or deleted meanwhile: store the image.
    # (A row holding the hash too wins: the claim above was refused, and so is this insert.)
    insert = insert_for(database)(images).values(
        url=url,
        url_hash=digest,
        created_at=utcnow(),
        pipeline_id=pipeline_id,
        step=step,
        width=width,
        height=height,
        thumbnail_status=PENDING,
    )
    row = await database.fetch_one(insert.on_conflict_do_nothing(index_elements=[images.c.url_hash]).returning(*LISTED))
    if row is not None:
        return row, True
    existing = await database.fetch_one(sa.select(*LISTED).where(images.c.url_hash == digest))
    if existing is None:  # deleted between the two statements: store it after all
        return await insert_image(
            database, url=url, pipeline_id=pipeline_id, step=step, width=width, height=height, spellings=spellings
        )
    return existing, False


def outcome_values(outcome: WarmOutcome | None, url: str, settings: LibraryConfig) -> dict[str, Any]:
    """Column updates for one warm outcome; a missing outcome is a failure too."""
    if outcome is None:
        return {"thumbnail_status": FAILED, "thumbnail_error": "warm_missing: no outcome for this source"}
    if not outcome.ok:
        reason, detail = failure_reason(outcome)
        return {"thumbnail_status": FAILED, "thumbnail_error": f"{reason}: {detail}" if detail else reason}
    values: dict[str, Any] = {
        "thumbnail_status": READY,
        "thumbnail_error": None,
        "thumbnail_url": thumbnail_url(url, settings.secret, settings.public_base_url),
    }
    # Sizes and colour only overwrite what the outcome actually knows, and only with values the
    # columns take: a remote /warm's JSON is not checked, and one width past int4 made PostgreSQL
    # refuse the whole batch's write (the backfill job stopped at it; SQLite past int64 too).
    for column in ("width", "height"):
        if size_or_none(getattr(outcome, column)) is not None:
            values[column] = getattr(outcome, column)
    if isinstance(outcome.color, str) and COLOR.fullmatch(outcome.color):
        values["color"] = outcome.color
    return values


MAX_ERROR_CODE = 64  # thumbnail_job_failures.error, a VARCHAR(64)
MAX_ERROR_DETAIL = 2000


def failure_reason(outcome: WarmOutcome) -> tuple[str, str | None]:
    """A failed outcome's (error code, detail) as text the columns take.

    A remote /warm's JSON is not checked: a code of 100 characters (or a number), a detail that
    is an object, made PostgreSQL or SQLite refuse the whole batch's write, and the job stopped.
    """
    error, detail = outcome.error, outcome.detail
    code = error[:MAX_ERROR_CODE] if isinstance(error, str) and error else "warm_failed"
    if detail is None or detail == "":
        return code, None
    return code, (detail if isinstance(detail, str) else str(detail))[:MAX_ERROR_DETAIL]


def outcomes_by_source(outcomes: Sequence[WarmOutcome]) -> dict[str, WarmOutcome]:
    return {outcome.source: outcome for outcome in outcomes}


async def record_outcomes(
    database: Database, settings: LibraryConfig, targets: Sequence[tuple[int, str]], outcomes: Sequence[WarmOutcome]
) -> None:
    """Write each image's warm outcome (ingest path; the backfill writes its own in a transaction)."""
    by_source = outcomes_by_source(outcomes)
    async with database.transaction():
        for image_id, url in targets:
            await database.execute(update_for_outcome(image_id, url, by_source.get(url), settings))


def update_for_outcome(image_id: int, url: str, outcome: WarmOutcome | None, settings: LibraryConfig) -> sa.Update:
    values = outcome_values(outcome, url, settings)
    update = sa.update(images).where(images.c.id == image_id).values(**values)
    if values["thumbnail_status"] == FAILED:
        # A late failure never un-does a thumbnail another path already made.
        update = update.where(images.c.thumbnail_status != READY)
    return update
