"""Reading request bodies: size-capped while streaming, JSON objects only."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from library_api.errors import ApiError, bad_request

MAX_BODY_BYTES = 64 * 1024


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, "body_too_large", f"the body must be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "body_too_large", f"the body must be at most {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise bad_request("incomplete_body", "the client disconnected before sending the whole body") from exc
    return b"".join(chunks)


async def read_json_object(request: Request) -> dict[str, Any]:
    body = await read_body(request)
    if not body.strip():
        raise bad_request("invalid_json", "the body must be a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request("invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise bad_request("invalid_json", "the body must be a JSON object")
    return value
