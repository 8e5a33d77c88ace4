"""/healthz: libvips can encode, the disk store is writable, Redis is reachable or not.

Redis being down is "degraded" (the proxy keeps serving from memory and disk); libvips or
the disk failing is "down" (503), because then no new thumbnail can be made or kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pyvips

from proxy.processing import ProcessingPool
from proxy.storage import DiskStore
from proxy.tiers import RedisTier


def vips_self_test() -> int:
    """Encode a tiny image; the byte count proves the encoder works."""
    image = pyvips.Image.black(8, 8, bands=3) + 128
    return len(image.cast("uchar").copy(interpretation="srgb").jpegsave_buffer(Q=65))


class HealthCheck:
    def __init__(self, pool: ProcessingPool, store: DiskStore, redis: RedisTier | None) -> None:
        self.pool = pool
        self.store = store
        self.redis = redis

    async def run(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        down = False
        try:
            checks["libvips"] = {"ok": await asyncio.wait_for(self.pool.run(vips_self_test), 5) > 0}
        except Exception as exc:
            checks["libvips"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        down |= not checks["libvips"]["ok"]
        try:
            await asyncio.to_thread(self.store.check_writable)
            checks["disk"] = {"ok": True}
        except OSError as exc:
            checks["disk"] = {"ok": False, "detail": str(exc)}
            down = True
        if self.redis is None:
            checks["redis"] = {"ok": True, "configured": False}
            degraded = False
        else:
            reachable = await self.redis.ping()
            checks["redis"] = {"ok": reachable, "configured": True}
            if not reachable:
                checks["redis"]["detail"] = self.redis.last_error
            degraded = not reachable
        checks["pool"] = {"in_flight": self.pool.in_flight, "capacity": self.pool.capacity}
        status = "down" if down else "degraded" if degraded else "ok"
        return {"status": status, "checks": checks}
