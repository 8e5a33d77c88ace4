"""The one error contract: a status, a stable code and a detail for people, answered as
``{"error": code, "detail": detail}`` with ``Cache-Control: no-store``.

Both packages raise subclasses of :class:`HTTPError` (the proxy's ``ProxyError``, the
library's ``ApiError``); one handler answers them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    # Never cached for long by an edge: the proxy's negative cache handles repeats itself.
    return JSONResponse({"error": code, "detail": detail}, status_code=status,
                        headers={"cache-control": "no-store", **(headers or {})})


class HTTPError(Exception):
    status: int = 500
    code: str = "internal"

    def __init__(
        self, detail: str, *, status: int | None = None, code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})

    def as_dict(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}

    def response(self) -> Response:
        return error_response(self.status, self.code, self.detail, self.headers)


async def handle_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPError)
    return exc.response()


# Starlette's own refusals (no route: 404; a method the route does not take: 405 with Allow).
STARLETTE_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                   405: "method_not_allowed"}


async def handle_starlette_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTPException (unknown path, unsupported method) in the same JSON shape."""
    assert isinstance(exc, StarletteHTTPException)
    code = STARLETTE_CODES.get(exc.status_code, "http_error")
    detail = f"no route for {request.url.path}" if exc.status_code == 404 else str(exc.detail)
    return error_response(exc.status_code, code, detail, exc.headers)
