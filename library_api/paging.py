"""Query parameters of the listing and the opaque keyset cursor.

A cursor is base64url JSON ``[created_at, id, offset]``: one image's position in the
listing order and a running offset, so a cursor walk still reports an ``offset``.
``created_at`` is null for an undated image (legacy junk the migration could not read):
those sort after every dated image, newest id first, so the order stays total.

The same cursor serves three purposes: ``cursor`` (start strictly below it),
``until`` (nothing above it: a fixed top, so pages never shift under new inserts) and
``newer_than`` (only what is above it: what arrived since).
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
MAX_LABEL_LENGTH = 200  # as ingest allows
MAX_ID = 2**63 - 1
# A cursor's image id may be any BIGINT: an operator's INSERT can store 0 or a negative id, and
# refusing the cursor at such a row stopped a cursor walk there (an offset walk went on).
MIN_CURSOR_ID = -(2**63)
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class Position:
    created_at: dt.datetime | None  # None: an undated image, listed after all dated ones
    id: int
    # created_at None, yet the row's stored value is not NULL (junk no reader can parse, which the
    # database still sorts among the dated rows): compare against that stored value itself.
    # Found by looking the row up (``images.resolve_position``), never carried in a cursor.
    anchored: bool = False


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int  # reported offset of the page's first image
    after: Position | None = None  # cursor: start strictly below this image
    until: Position | None = None  # only this image and those below it
    newer_than: Position | None = None  # only images strictly above it
    pipeline_id: str | None = None  # only this pipeline's images
    step: str | None = None  # only this step's images

    @property
    def filtered(self) -> bool:
        return self.pipeline_id is not None or self.step is not None

    @property
    def skip(self) -> int:
        """Rows to skip in the query: a cursor already says where to start."""
        return 0 if self.after is not None else self.offset


def parse_page_request(params: Mapping[str, str]) -> PageRequest:
    limit = parse_int(params, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    until = optional_cursor(params, "until")
    newer_than = optional_cursor(params, "newer_than")
    labels = {name: optional_label(params, name) for name in ("pipeline_id", "step")}
    raw_cursor = params.get("cursor")
    if raw_cursor is None or raw_cursor == "":
        offset = parse_int(params, "offset", 0, minimum=0, maximum=MAX_OFFSET)
        return PageRequest(limit, offset, None, until, newer_than, **labels)
    if params.get("offset") not in (None, ""):
        raise bad_request("invalid_parameter", "use either offset or cursor, not both")
    after, offset = decode_cursor(raw_cursor, "cursor")
    return PageRequest(limit, offset, after, until, newer_than, **labels)


def optional_label(params: Mapping[str, str], name: str) -> str | None:
    """A filter on a label column: empty means no filter; what ingest could never store is a 400."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_LABEL_LENGTH or any(ord(char) < 32 or ord(char) == 127 for char in raw):
        raise bad_request("invalid_parameter", f"{name} must be at most {MAX_LABEL_LENGTH} printable characters")
    return raw


def optional_cursor(params: Mapping[str, str], name: str) -> Position | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    return decode_cursor(raw, name)[0]


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


def parse_id(raw: str, max_digits: int = 18) -> int | None:
    """A path identifier: ASCII digits only (``str.isdigit`` also takes '²' and '٣'), bounded."""
    if not re.fullmatch(rf"[0-9]{{1,{max_digits}}}", raw):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def encode_cursor(position: Position, offset: int) -> str:
    created_at = None if position.created_at is None else position.created_at.isoformat()
    payload = orjson.dumps([created_at, position.id, min(offset, MAX_OFFSET)])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, name: str = "cursor") -> tuple[Position, int]:
    invalid = bad_request("invalid_cursor", f"{name} is not a cursor this API returned (pass it as is)")
    if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise invalid
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created_at_text, image_id, offset = payload
        created_at = None
        if created_at_text is not None:
            if not isinstance(created_at_text, str):
                raise TypeError("created_at is not a string")
            created_at = dt.datetime.fromisoformat(created_at_text)
            if created_at.tzinfo is None:
                raise ValueError("naive timestamp")
            created_at = created_at.astimezone(dt.UTC)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise invalid from exc
    if type(image_id) is not int or type(offset) is not int:
        raise invalid
    if not (MIN_CURSOR_ID <= image_id <= MAX_ID and 0 <= offset <= MAX_OFFSET):
        raise invalid
    return Position(created_at, image_id), offset
