"""Reading request bodies: size-capped while streaming, JSON objects only (``httpkit.body``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from httpkit.body import read_capped, require_json_content_type
from httpkit.body import read_json_object as read_capped_json_object

MAX_BODY_BYTES = 64 * 1024

__all__ = ["MAX_BODY_BYTES", "read_body", "read_json_object", "require_json_content_type"]


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    return await read_capped(request, limit)


async def read_json_object(request: Request) -> dict[str, Any]:
    return await read_capped_json_object(request, MAX_BODY_BYTES)
