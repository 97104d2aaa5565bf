"""The client keeps to its request budget and concurrency limit, shared per credential."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx

from tests.connectors.icompleat.support import (
    FAST,
    FakeClock,
    Script,
    fresh_tenant,
    make_client,
    ok,
)


async def test_request_budget_is_enforced_across_clients_of_one_key() -> None:
    """Two clients sharing a key send at most 3 requests in any 60 s, all calls completing."""
    clock, tenant = FakeClock(), fresh_tenant()
    script = Script(ok({"Companies": []}), clock=clock)
    limits = replace(FAST, requests_per_minute=3)
    one = make_client(script, clock=clock, limits=limits, key="budget-key", tenant=tenant)
    two = make_client(script, clock=clock, limits=limits, key="budget-key", tenant=tenant)
    await asyncio.wait_for(asyncio.gather(*(c.companies() for c in [one, two] * 4)), timeout=10)
    times = script.times
    assert len(times) == 8
    assert max(sum(1 for u in times if t <= u < t + 60) for t in times) == 3
    assert times[-1] - times[0] >= 120


async def test_concurrency_limit_caps_requests_in_flight() -> None:
    """With max_concurrency 2, no more than two requests are ever in flight at once."""
    in_flight = peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return ok({"Companies": []})

    client = make_client(Script(slow), limits=replace(FAST, max_concurrency=2))
    await asyncio.wait_for(asyncio.gather(*(client.companies() for _ in range(8))), timeout=10)
    assert peak == 2
    assert client.stats.reads == 8


async def test_other_credentials_do_not_share_the_budget() -> None:
    """A different key gets its own budget: it is not held back by the first one's."""
    clock, tenant = FakeClock(), fresh_tenant()
    script = Script(ok({"Companies": []}), clock=clock)
    limits = replace(FAST, requests_per_minute=1)
    first = make_client(script, clock=clock, limits=limits, tenant=tenant, key="key-one")
    other = make_client(script, clock=clock, limits=limits, tenant=tenant, key="key-two")
    await first.companies()
    await other.companies()
    assert script.times == [clock.t, clock.t]
    assert first.limiter is not other.limiter
