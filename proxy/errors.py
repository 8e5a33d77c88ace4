"""The proxy's error contract: every failure is a status, a code and a detail.

Handlers turn a :class:`ProxyError` into ``{"error": code, "detail": detail}``; nothing a
client or an origin does reaches the client as a 500.
"""

from __future__ import annotations

from httpkit.errors import HTTPError


class ProxyError(HTTPError):
    """Every proxy failure (the shared contract of ``httpkit.errors``)."""


class NotFound(ProxyError):
    status, code = 404, "not_found"


class MethodNotAllowed(ProxyError):
    status, code = 405, "method_not_allowed"


class BadSignature(ProxyError):
    status, code = 403, "bad_signature"


class SourceNotAllowed(ProxyError):
    status, code = 403, "source_not_allowed"


class Forbidden(ProxyError):
    status, code = 403, "forbidden"


class BadRequest(ProxyError):
    status, code = 400, "bad_request"


class TooLarge(ProxyError):
    status, code = 413, "too_large"


class TooManyPixels(ProxyError):
    status, code = 413, "too_many_pixels"


class UnsupportedType(ProxyError):
    status, code = 415, "unsupported_type"


class Undecodable(ProxyError):
    status, code = 422, "undecodable"


class OriginError(ProxyError):
    status, code = 502, "origin_error"


class OriginUnreachable(ProxyError):
    status, code = 502, "origin_unreachable"


class OriginTimeout(ProxyError):
    status, code = 504, "origin_timeout"


class Overloaded(ProxyError):
    status, code = 503, "overloaded"

    def __init__(self, detail: str = "too many thumbnails in progress, retry shortly", retry_after: int = 1):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


# Failures that belong to the source itself, so repeating the request cannot help for a while.
NEGATIVE_CACHEABLE = frozenset({413, 415, 422, 502, 504})
