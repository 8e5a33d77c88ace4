"""Bearer tokens: 401 without one, 403 with a wrong one, compared in constant time."""

from __future__ import annotations

import hmac

from httpkit.errors import HTTPError


def require_bearer(authorization: str | None, token: str, role: str) -> None:
    """Raise unless ``authorization`` is ``Bearer <token>``; an empty ``token`` refuses everyone."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        article = "an" if role[:1] in "aeiou" else "a"
        raise HTTPError(f"{article} {role} bearer token is required", status=401, code="unauthorized",
                        headers={"www-authenticate": "Bearer"})
    if not token or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise HTTPError(f"the {role} token is not valid", status=403, code="forbidden")
