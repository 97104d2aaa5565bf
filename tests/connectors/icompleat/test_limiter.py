"""The limiter: sliding-window budget, concurrency cap, shared pause, per-credential sharing."""

from __future__ import annotations

import asyncio

import pytest

from connectors.icompleat.limiter import Limiter, LimiterRegistry
from sync.foundation.secrets import Secret
from tests.connectors.icompleat.support import FakeClock


async def _spend(limiter: Limiter, clock: FakeClock, times: list[float]) -> None:
    async with limiter.slot():
        times.append(clock.now())


def _max_in_window(times: list[float], window: float = 60.0) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


async def test_budget_holds_requests_to_the_window() -> None:
    """Three a minute: the fourth request starts exactly when the first leaves the window."""
    clock = FakeClock()
    limiter = Limiter(3, 4, clock)
    times: list[float] = []
    for _ in range(7):
        await _spend(limiter, clock, times)
    assert times[:4] == [1000.0, 1000.0, 1000.0, 1060.0]
    assert _max_in_window(times) == 3


async def test_budget_holds_under_concurrency() -> None:
    """Many concurrent callers still never exceed the budget in any 60 s window."""
    clock = FakeClock()
    limiter = Limiter(5, 4, clock)
    times: list[float] = []
    await asyncio.wait_for(asyncio.gather(*(_spend(limiter, clock, times) for _ in range(23))),
                           timeout=10)
    assert len(times) == 23
    assert _max_in_window(times) <= 5


async def test_zero_means_no_budget() -> None:
    """requests_per_minute = 0 never waits."""
    clock = FakeClock()
    limiter = Limiter(0, 0, clock)
    times: list[float] = []
    for _ in range(500):
        await _spend(limiter, clock, times)
    assert clock.sleeps == []
    assert limiter.wait_time() == 0


async def test_pause_delays_every_caller_and_never_shortens() -> None:
    """A pause holds back the next request; a shorter pause does not cut it."""
    clock = FakeClock()
    limiter = Limiter(0, 4, clock)
    limiter.pause(10)
    limiter.pause(2)
    assert limiter.paused_for() == 10
    times: list[float] = []
    await _spend(limiter, clock, times)
    assert times == [1010.0]
    assert limiter.paused_for() == 0


async def test_concurrency_cap_and_fifo_hand_over() -> None:
    """With a cap of 2, a third caller waits until a slot is handed over to it."""
    limiter = Limiter(0, 2, FakeClock())
    release = asyncio.Event()
    active: list[int] = []
    peak = 0

    async def work(n: int) -> None:
        nonlocal peak
        async with limiter.slot():
            active.append(n)
            peak = max(peak, len(active))
            await release.wait()
            active.remove(n)

    tasks = [asyncio.create_task(work(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert sorted(active) == [0, 1]
    assert limiter.snapshot()["queued"] == 3
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert peak == 2
    assert limiter.snapshot()["in_flight"] == 0


async def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    """A caller cancelled while queued leaves the slot count intact."""
    limiter = Limiter(0, 1, FakeClock())
    gate = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot():
            await gate.wait()

    holder = asyncio.create_task(hold())
    queued = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    queued.cancel()
    gate.set()
    await asyncio.wait_for(holder, timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert limiter.snapshot()["in_flight"] == 0
    assert limiter.snapshot()["queued"] == 0
    async with asyncio.timeout(5), limiter.slot():
        pass


def test_registry_shares_by_credentials_and_never_keeps_the_key() -> None:
    """Same URL, tenant and key share one limiter; the sharing key holds no key value."""
    registry = LimiterRegistry()
    key = Secret("a-secret-key-value", origin="test")
    one = registry.get("https://h/", "T", key, requests_per_minute=50, max_concurrency=4)
    same = registry.get("https://H", "t", Secret("a-secret-key-value"), requests_per_minute=9,
                        max_concurrency=1)
    other = registry.get("https://h", "T", Secret("another-key"), requests_per_minute=50,
                         max_concurrency=4)
    assert one is same
    assert one is not other
    assert same.requests_per_minute == 50
    assert "a-secret-key-value" not in repr(registry.key("https://h", "T", key))
    registry.clear()
    assert registry.get("https://h", "T", key, requests_per_minute=1,
                        max_concurrency=1) is not one
