"""Request bodies read under a byte cap while streaming; JSON objects only."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from httpkit.errors import HTTPError


def bad_request(code: str, detail: str) -> HTTPError:
    return HTTPError(detail, status=400, code=code)


async def read_capped(request: Request, limit: int, *, too_large_code: str = "body_too_large") -> bytes:
    """The body, refused with 413 as soon as it (or its declared length) passes ``limit``."""
    too_large = HTTPError(f"the body must be at most {limit} bytes", status=413, code=too_large_code)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit() or int(declared) > limit):
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise bad_request("incomplete_body", "the client disconnected before sending the whole body") from exc
    return b"".join(chunks)


def require_json_content_type(request: Request) -> None:
    """Only ``application/json``: a cross-site form (text/plain, form-urlencoded) cannot send
    that type without a CORS preflight, so it cannot reach a write endpoint."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPError("the body must be sent as Content-Type: application/json", status=415,
                        code="unsupported_media_type", headers={"accept-post": "application/json"})


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request("invalid_json", f"the body is not valid JSON: {exc}") from exc


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    body = await read_capped(request, limit)
    if not body.strip():
        raise bad_request("invalid_json", "the body must be a JSON object")
    require_json_content_type(request)
    value = parse_json(body)
    if not isinstance(value, dict):
        raise bad_request("invalid_json", "the body must be a JSON object")
    return value
