"""The request budget counted where a gateway counts it: arrivals at the sandbox, every window."""

from __future__ import annotations

import asyncio

from connectors.icompleat.client import ClientLimits, IcompleatClient
from connectors.icompleat.limiter import LIMITERS, Limiter
from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.secrets import Secret
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID

BUDGET, WINDOW = 4, 1.5  # the 60-second rule scaled down: the arithmetic is the same
KEY = Secret(CANARY_KEY, origin="sandbox fixture key")


def _worst_window(times: list[float], window: float) -> int:
    """The most arrivals in any window of ``window`` seconds, both ends included."""
    ordered = sorted(times)
    return max(sum(1 for u in ordered if t <= u <= t + window) for t in ordered)


def _client(sandbox: SandboxServer) -> IcompleatClient:
    limits = ClientLimits(requests_per_minute=BUDGET, max_concurrency=4, max_attempts=2)
    return IcompleatClient(base_url=sandbox.url, tenant_id=TENANT_ID, api_key=KEY, limits=limits)


async def _job(client: IcompleatClient, api: str, n: int) -> None:
    records = [{"Code": f"{api[:2].upper()}{i}", "Name": f"n{i}"} for i in range(n)]
    await client.refresh_reference(api, COMPANY_ID, records, chunk_size=10)
    await client.list_reference(api, COMPANY_ID)


async def test_no_window_holds_more_than_the_budget_at_the_sandbox(sandbox: SandboxServer
                                                                   ) -> None:
    """Two jobs on one set of credentials, slow first answers: no window passes the budget."""
    LIMITERS.clear()
    shared = LIMITERS.get(sandbox.url, TENANT_ID, KEY, requests_per_minute=BUDGET,
                          max_concurrency=4, window_seconds=WINDOW)
    # The first call of each burst is slow to arrive-and-answer; later ones are fast: counting
    # from when a request was SENT would let the next burst land inside the first one's window.
    sandbox.state.faults.set("suppliers.post", latency=0.4, times=1)
    try:
        async with _client(sandbox) as one, _client(sandbox) as two:
            assert one.limiter is shared is two.limiter
            await asyncio.gather(_job(one, "suppliers", 30), _job(two, "accountcodes", 30))
    finally:
        LIMITERS.clear()
    arrivals = [e.arrived for e in sandbox.state.log.entries() if e.arrived is not None]
    assert len(arrivals) == 2 * (3 + 1)  # three chunks and one short page per job
    assert _worst_window(arrivals, WINDOW) <= BUDGET


async def test_a_request_in_flight_counts_until_it_ends() -> None:
    """With the budget spent by requests still in flight, the next waits a whole window."""
    limiter = Limiter(2, 4, window_seconds=0.3)
    started: list[float] = []
    loop = asyncio.get_running_loop()

    async def call(hold: float) -> None:
        async with limiter.slot():
            started.append(loop.time())
            await asyncio.sleep(hold)

    await asyncio.gather(call(0.2), call(0.2), call(0.0))
    assert started[2] - started[0] >= 0.2 + 0.3 - 0.02
