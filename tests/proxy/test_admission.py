"""Units of the admission layer and the capped decoder: budgets, the hold, bounded pieces."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from proxy import admission
from proxy.admission import FetchBudget, SourceHold
from proxy.content_coding import PIECE, CappedDecoder, StackedEncoding, UnsupportedEncoding, codings_of
from proxy.errors import Overloaded, TooLarge
from proxy.processing import ProcessingPool
from tests.support.wait import ManualClock, wait_until


async def test_a_ticket_shrinks_to_the_declared_length_and_frees_its_slot_when_downloaded() -> None:
    budget = FetchBudget(max_fetches=2, max_bytes=100, per_fetch=50, wait_limit=1)
    async with budget.admit() as ticket:
        assert (budget.fetches, budget.bytes) == (1, 50)
        ticket.expect(10)
        assert budget.bytes == 10
        ticket.downloaded(8)
        assert (budget.fetches, budget.bytes) == (0, 8)  # the body stays counted until the render is done
    assert (budget.fetches, budget.bytes) == (0, 0)


async def test_a_full_budget_waits_then_overloads() -> None:
    budget = FetchBudget(max_fetches=1, max_bytes=100, per_fetch=50, wait_limit=0.1)
    async with budget.admit():
        with pytest.raises(Overloaded) as refused:
            async with budget.admit():
                pass  # pragma: no cover
        assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "2"
    assert budget.rejected == 1 and budget.fetches == 0


async def test_a_waiter_is_admitted_when_bytes_come_free() -> None:
    budget = FetchBudget(max_fetches=10, max_bytes=100, per_fetch=60, wait_limit=5)
    order: list[str] = []

    async def second() -> None:
        async with budget.admit():
            order.append("second")

    async with budget.admit() as first:
        waiter = asyncio.create_task(second())
        await wait_until(lambda: budget.waiting == 1, what="the second download to wait for bytes")
        assert order == []
        first.expect(30)  # 30 + 60 fits in 100
        await asyncio.wait_for(waiter, 1)
    assert order == ["second"] and budget.bytes == 0


async def test_one_download_may_always_run_alone() -> None:
    budget = FetchBudget(max_fetches=4, max_bytes=10, per_fetch=50, wait_limit=0.1)
    async with budget.admit():
        assert budget.bytes == 50


def test_the_hold_is_bounded_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    hold = SourceHold(max_bytes=10, seconds=60)
    hold.put("a", b"12345")
    hold.put("b", b"12345")
    hold.put("c", b"123")  # the oldest goes to make room
    assert hold.take("a") is None and hold.bytes == 8
    hold.put("big", b"x" * 11)  # larger than the whole hold: not kept
    assert hold.take("big") is None
    assert hold.take("b") == b"12345" and hold.take("b") is None
    clock = ManualClock()
    monkeypatch.setattr(admission, "time", clock)
    short = SourceHold(max_bytes=10, seconds=5)
    short.put("a", b"1")
    short.put("b", b"2")
    clock.advance(4.999)
    assert short.take("a") == b"1"  # still inside its window
    clock.advance(0.001)
    assert short.take("b") is None and short.bytes == 0  # expired at exactly ``seconds``


def test_codings_are_parsed_with_identity_dropped() -> None:
    assert codings_of("") == [] and codings_of("identity") == [] and codings_of(" GZip ,identity") == ["gzip"]
    with pytest.raises(StackedEncoding):
        CappedDecoder("gzip, gzip", 10)
    with pytest.raises(UnsupportedEncoding):
        CappedDecoder("br", 10)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_inflation_is_done_in_bounded_pieces_and_stops_at_the_cap(coding: str) -> None:
    zeros = b"\0" * 40_000_000
    body = gzip.compress(zeros) if coding == "gzip" else zlib.compress(zeros)
    cap = 10_000_000
    decoder = CappedDecoder(coding, cap)
    pieces: list[int] = []
    with pytest.raises(TooLarge):
        for start in range(0, len(body), 65536):
            for piece in decoder.feed(body[start:start + 65536]):
                pieces.append(len(piece))
    assert max(pieces) <= PIECE  # each call does a bounded amount of work
    assert decoder.produced == cap + 1 and sum(pieces) <= cap


def test_a_whole_body_round_trips_in_any_chunking() -> None:
    data = bytes(range(256)) * 20_000
    body = gzip.compress(data) + gzip.compress(b"tail")  # two members are one gzip body
    for size in (1, 7, 4096, len(body)):
        decoder = CappedDecoder("gzip", 10_000_000)
        out = b"".join(piece for start in range(0, len(body), size) for piece in decoder.feed(body[start:start + size]))
        decoder.finish()
        assert out == data + b"tail"


def test_the_pool_sizes_itself_to_the_cores_this_process_may_use() -> None:
    """0 threads means one per usable core: the process's affinity (a cpuset, taskset), not the machine."""
    script = (
        "import os; from proxy.processing import ProcessingPool; "
        "print(ProcessingPool(0, 0).threads, len(os.sched_getaffinity(0)), end=' '); "
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); print(ProcessingPool(0, 0).threads)"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert found[0] == found[1] and found[2] == "1", found


async def test_a_job_after_the_pool_closed_is_overload_not_the_sources_failure() -> None:
    """A shutdown under way is transient (503, never negative-cached), not an unexpected error that
    the service would remember as an undecodable source and that would drop a warm-up's bytes."""
    pool = ProcessingPool(1, 1)
    with pytest.raises(Overloaded):
        await pool.run(lambda: 1)  # not started
    pool.start()
    assert await pool.run(lambda: 2) == 2
    pool.close()
    with pytest.raises(Overloaded):
        await pool.run(lambda: 3)
    assert pool.in_flight == 0
