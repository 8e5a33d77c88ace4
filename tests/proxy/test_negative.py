"""The negative cache keeps what a failure said, never the failure itself."""

from __future__ import annotations

import gc
import weakref

import pytest

from proxy.errors import OriginTimeout, TooLarge
from proxy.negative import MAX_REMEMBERED, NegativeCache


class Body:
    """Stands in for a fetched body (a bytearray cannot be weakly referenced)."""


def fail_holding(body: Body) -> None:
    buffer = body  # a local of the failing frame, as the fetch's body buffer is
    raise TooLarge(f"over the cap ({type(buffer).__name__})")


async def test_a_remembered_failure_holds_none_of_its_frames() -> None:
    cache = NegativeCache(60, None)
    body = Body()
    alive = weakref.ref(body)
    try:
        fail_holding(body)
    except TooLarge as exc:
        await cache.put("key", exc)
    del body
    gc.collect()
    # The exception's traceback held the frame, and the frame the body: a worker kept every
    # failed source's bytes this way (10,000 entries of up to the byte cap each).
    assert alive() is None

    first, second = cache.get_local("key"), cache.get_local("key")
    assert first is not None and second is not None
    assert first is not second  # re-raising one object would chain each raise's frames onto it
    assert (first.status, first.code, first.detail) == (413, "too_large", "over the cap (Body)")
    assert first.__traceback__ is None


async def test_it_stays_bounded_and_forgets_after_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("proxy.negative.time.monotonic", lambda: now[0])
    cache = NegativeCache(60, None)
    for n in range(MAX_REMEMBERED + 5):
        await cache.put(f"k{n}", OriginTimeout("slow"))
    assert cache.get_local("k0") is None  # the oldest went first
    assert cache.get_local(f"k{MAX_REMEMBERED + 4}") is not None
    now[0] += 60
    assert cache.get_local(f"k{MAX_REMEMBERED + 4}") is None
