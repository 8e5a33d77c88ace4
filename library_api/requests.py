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


def require_json_content_type(request: Request) -> None:
    """Only ``application/json`` bodies: a cross-site form (text/plain, form-urlencoded) cannot
    send that type without a CORS preflight, so it can no longer create rows."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "the body must be sent as Content-Type: application/json",
            {"accept-post": "application/json"},
        )


async def read_json_object(request: Request) -> dict[str, Any]:
    body = await read_body(request)
    if not body.strip():
        raise bad_request("invalid_json", "the body must be a JSON object")
    require_json_content_type(request)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request("invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise bad_request("invalid_json", "the body must be a JSON object")
    return value
