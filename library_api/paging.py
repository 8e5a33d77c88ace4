"""Query parameters of the listing and the opaque keyset cursor.

A cursor is base64url JSON ``[created_at, id, offset]``: the last image of a page (the
next page starts strictly below it in (created_at, id) order) and the position of the
next page, so a cursor walk still reports an ``offset``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from library_api.errors import bad_request

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 2**31 - 1
MAX_CURSOR_LENGTH = 200
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class Position:
    created_at: dt.datetime
    id: int


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int
    after: Position | None  # keyset: start strictly below this image


def parse_page_request(params: Mapping[str, str]) -> PageRequest:
    limit = parse_int(params, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    raw_cursor = params.get("cursor")
    if raw_cursor is None or raw_cursor == "":
        return PageRequest(limit, parse_int(params, "offset", 0, minimum=0, maximum=MAX_OFFSET), None)
    if params.get("offset") not in (None, ""):
        raise bad_request("invalid_parameter", "use either offset or cursor, not both")
    after, offset = decode_cursor(raw_cursor)
    return PageRequest(limit, offset, after)


def parse_int(params: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw):
        raise bad_request("invalid_parameter", f"{name} must be an integer from {minimum} to {maximum}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise bad_request("invalid_parameter", f"{name} must be an integer from {minimum} to {maximum}")
    return value


def encode_cursor(position: Position, offset: int) -> str:
    payload = orjson.dumps([position.created_at.isoformat(), position.id, offset])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[Position, int]:
    invalid = bad_request("invalid_cursor", "cursor is not one this API returned (use next_cursor as is)")
    if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise invalid
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created_at_text, image_id, offset = payload
        created_at = dt.datetime.fromisoformat(created_at_text)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        created_at = created_at.astimezone(dt.UTC)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise invalid from exc
    if type(image_id) is not int or type(offset) is not int:
        raise invalid
    if not (0 <= image_id < 2**63 and 0 <= offset <= MAX_OFFSET):
        raise invalid
    return Position(created_at, image_id), offset
