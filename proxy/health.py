"""Liveness and readiness.

- ``/healthz`` (liveness): the process serves. Nothing is checked, so a full processing pool
  (load) or a broken disk (readiness) never gets a live process restarted.
- ``/readyz`` (readiness, what a load balancer needs): a thumbnail can be encoded, the store is
  writable, Redis and any added dependency (the library database) answer, and how
  saturated the processing pool is. libvips or the store failing, or a required dependency
  failing, is "down" (503): no new thumbnail can be made or kept. Redis down is "degraded"
  (200: memory and disk keep serving). A saturated pool is "busy" (200, with the figures):
  the replica is healthy, and the pool answers its own 503 + Retry-After per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pyvips

from proxy.pipeline import encode, materialise, resize
from proxy.processing import ProcessingPool
from proxy.storage import Store
from proxy.tiers import RedisTier
from proxy.variants import THUMB

CHECK_TIMEOUT = 5.0
DETAIL_CHARS = 300
Check = Callable[[], Awaitable[None]]  # raises when the dependency is not usable


def brief(exc: BaseException | str) -> str:
    """One line of at most DETAIL_CHARS: a client's error can carry pages of debug output (obstore's does)."""
    text = exc if isinstance(exc, str) else str(exc) or type(exc).__name__
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= DETAIL_CHARS else line[: DETAIL_CHARS - 1] + "…"


def vips_self_test() -> int:
    """Resize and encode a tiny image the way a render does; the byte count proves both work."""
    image = (pyvips.Image.black(16, 16, bands=3) + 128).cast("uchar").copy(interpretation="srgb")
    return len(encode(materialise(resize(image, 8)), THUMB))


class HealthCheck:
    def __init__(self, pool: ProcessingPool, store: Store, redis: RedisTier | None) -> None:
        self.pool = pool
        self.store = store
        self.redis = redis
        self.required: dict[str, Check] = {}

    def require(self, name: str, check: Check) -> None:
        """Another dependency readiness depends on (the composition root adds the database)."""
        self.required[name] = check

    def live(self) -> dict[str, Any]:
        return {"status": "ok"}

    async def ready(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        down = False
        try:
            # In a thread of its own, not the pool: a full pool is load, not a broken libvips.
            encoded = await asyncio.wait_for(asyncio.to_thread(vips_self_test), CHECK_TIMEOUT)
            checks["libvips"] = {"ok": encoded > 0}
        except Exception as exc:
            checks["libvips"] = {"ok": False, "detail": brief(f"{type(exc).__name__}: {exc}")}
        down |= not checks["libvips"]["ok"]
        try:
            await asyncio.wait_for(self.store.check_writable(), CHECK_TIMEOUT)
            checks["disk"] = {"ok": True}
        except (OSError, TimeoutError) as exc:
            checks["disk"] = {"ok": False, "detail": brief(exc)}
            down = True
        for name, check in self.required.items():
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT)
                checks[name] = {"ok": True}
            except Exception as exc:
                checks[name] = {"ok": False, "detail": brief(f"{type(exc).__name__}: {exc}")}
                down = True
        degraded = False
        if self.redis is None:
            checks["redis"] = {"ok": True, "configured": False}
        else:
            reachable = await self.redis.ping()
            checks["redis"] = {"ok": reachable, "configured": True}
            if not reachable:
                checks["redis"]["detail"] = brief(self.redis.last_error or "unreachable")
            degraded = not reachable
        saturation = self.pool.saturation
        checks["pool"] = {"in_flight": self.pool.in_flight, "capacity": self.pool.capacity,
                          "saturation": round(saturation, 3)}
        status = "down" if down else "degraded" if degraded else "busy" if saturation >= 1.0 else "ok"
        return {"status": status, "checks": checks}
