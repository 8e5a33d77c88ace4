"""The warm client of the multi-process stack: POSTs to another process's proxy ``/warm``.

Per-source failures come back as outcomes; a call that fails as a whole (unreachable,
401/403, 5xx, a body that is not the contract) raises :class:`WarmUnavailable`, so callers
leave images pending rather than marking a whole batch failed for an outage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from proxy.warm_types import WarmOutcome

MAX_SOURCES_PER_CALL = 500  # the proxy's own cap on one /warm call
CONNECT_TIMEOUT = 5.0
# Waiting for a batch of thumbnails can take as long as its slowest origin, several times over.
WAIT_TIMEOUT = 300.0


class WarmUnavailable(RuntimeError):
    """The warm endpoint could not answer for the batch (nothing is known about its sources)."""


class HttpWarmClient:
    def __init__(self, warm_url: str, token: str, *, timeout: float = WAIT_TIMEOUT) -> None:
        self.warm_url = warm_url
        self.token = token
        self.timeout = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        # Created lazily, inside the event loop that uses it.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        # Tags are for the durable queue's consumers; the remote /warm endpoint takes sources only.
        outcomes: list[WarmOutcome] = []
        for start in range(0, len(sources), MAX_SOURCES_PER_CALL):
            outcomes += await self._warm_chunk(list(sources[start : start + MAX_SOURCES_PER_CALL]), wait)
        return outcomes

    async def _warm_chunk(self, sources: list[str], wait: bool) -> list[WarmOutcome]:
        if not sources:
            return []
        try:
            response = await self.client.post(
                self.warm_url,
                json={"sources": sources, "wait": wait},
                headers={"authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as exc:
            raise WarmUnavailable(f"warm endpoint unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code not in (200, 202):
            raise WarmUnavailable(f"warm endpoint answered {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
            return parse_results(body) if wait else parse_accepted(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise WarmUnavailable(f"warm endpoint answered an unexpected body: {exc}") from exc


def parse_results(body: dict[str, Any]) -> list[WarmOutcome]:
    return [
        WarmOutcome(
            source=str(item["source"]),
            ok=bool(item["ok"]),
            error=item.get("error"),
            detail=item.get("detail"),
            width=item.get("width"),
            height=item.get("height"),
            color=item.get("color"),
        )
        for item in body["results"]
    ]


def parse_accepted(body: dict[str, Any]) -> list[WarmOutcome]:
    accepted = [WarmOutcome(source=str(item["source"]), ok=True, detail=item.get("key")) for item in body["accepted"]]
    refused = [
        WarmOutcome(source=str(item["source"]), ok=False, error=item.get("error"), detail=item.get("detail"))
        for item in body["refused"]
    ]
    return accepted + refused
