"""The composed app's error handlers: the shared JSON contract for everything, bugs included."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from httpkit.errors import HTTPError, error_response, handle_http_error, handle_starlette_error

logger = logging.getLogger("thumbs")


async def internal_error(request: Request, exc: Exception) -> Response:
    # A bug: logged with its traceback; the client still gets JSON, never an HTML page.
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal error")


DEFAULT_HANDLERS = {HTTPError: handle_http_error, HTTPException: handle_starlette_error, Exception: internal_error}
