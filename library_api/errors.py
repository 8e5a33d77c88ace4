"""The library's errors: the shared contract (``httpkit.errors``), raised as :class:`ApiError`."""

from __future__ import annotations

from collections.abc import Mapping

from httpkit.errors import HTTPError, JSONResponse, error_response

__all__ = ["ApiError", "JSONResponse", "bad_request", "error_response"]


class ApiError(HTTPError):
    """Raised by endpoints: ``ApiError(404, "not_found", "no backfill job 7")``."""

    def __init__(self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail, status=status, code=error, headers=headers)

    @property
    def error(self) -> str:
        return self.code


def bad_request(error: str, detail: str) -> ApiError:
    return ApiError(400, error, detail)
