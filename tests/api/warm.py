"""A real, tiny WarmClient for API tests: records every call and can fail or hold sources.

The proxy's own warmer is tested with the proxy; here the API's use of the contract is
under test, so this client says exactly what happened to each source.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from proxy.warm_types import WarmOutcome


@dataclass
class RecordingWarmClient:
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)  # source -> (error, detail)
    calls: list[tuple[list[str], bool]] = field(default_factory=list)
    completed: Counter[str] = field(default_factory=Counter)  # sources warmed ok, per call that returned
    hold: asyncio.Event | None = None  # when set: calls from number ``hold_from`` (1-based) wait for it
    hold_from: int = 1
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    broken: bool = False  # raise like an unreachable warm endpoint

    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        self.calls.append((list(sources), wait))
        if len(self.calls) >= self.hold_from:
            self.entered.set()
        if self.hold is not None and len(self.calls) >= self.hold_from:
            await self.hold.wait()
        if self.broken:
            raise ConnectionError("warm endpoint unreachable")
        outcomes = []
        for source in sources:
            if source in self.failures:
                error, detail = self.failures[source]
                outcomes.append(WarmOutcome(source=source, ok=False, error=error, detail=detail))
            else:
                outcomes.append(WarmOutcome(source=source, ok=True, width=640, height=480, color="#336699"))
        for outcome in outcomes:
            if outcome.ok:
                self.completed[outcome.source] += 1
        return outcomes

    def warmed(self) -> list[str]:
        return [source for sources, _ in self.calls for source in sources]
