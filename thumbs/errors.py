"""JSON error bodies for what no component handles itself: unknown paths, methods, bugs."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

logger = logging.getLogger("thumbs")

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = CODES.get(exc.status_code, "http_error")
    body = {"error": code, "detail": exc.detail}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    # A bug: logged with its traceback; the client still gets JSON, never an HTML page.
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal", "detail": "internal error"}, status_code=500)


DEFAULT_HANDLERS = {HTTPException: http_error, Exception: internal_error}
