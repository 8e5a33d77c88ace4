"""A bounded memo of thumbnail paths whose signature has already verified.

A warm hit is mostly repeat requests for the same few thousand URLs; re-running HMAC-SHA256
against every configured secret, the base64 decode and the cache-key hash for each of them
is most of the hit's Python. Only paths that verified are remembered (a dict keyed by the
exact path), so an attacker's guess is still checked by :func:`proxy.urls.verify` in
constant time; the memo never answers "no". Secrets are fixed for the process's life.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy.urls import ThumbnailRequest, parse_thumbnail_path

DEFAULT_ENTRIES = 8192


class VerifiedPaths:
    def __init__(self, secrets: Sequence[str], capacity: int = DEFAULT_ENTRIES) -> None:
        self.secrets = list(secrets)
        self.capacity = capacity
        self._paths: dict[str, ThumbnailRequest] = {}

    def __len__(self) -> int:
        return len(self._paths)

    def parse(self, path: str) -> ThumbnailRequest:
        """The verified request for ``path``; raises like :func:`parse_thumbnail_path`."""
        request = self._paths.get(path)
        if request is None:
            request = parse_thumbnail_path(path, self.secrets)
            if len(self._paths) >= self.capacity:
                # Insertion order: drop the oldest. Cheap, and a hot path is re-added on its next hit.
                del self._paths[next(iter(self._paths))]
            self._paths[path] = request
        return request
