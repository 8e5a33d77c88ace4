"""JSON errors: every refusal is ``{"error": code, "detail": message}`` with a 4xx/5xx status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """Raised by endpoints; the component's handler turns it into a JSON response."""

    def __init__(self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


def error_response(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": error, "detail": detail},
        status_code=status,
        headers={"cache-control": "no-store", **(headers or {})},
    )


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail, exc.headers)


def bad_request(error: str, detail: str) -> ApiError:
    return ApiError(400, error, detail)
