"""S05: a 429 storm, with Retry-After, without it, and as "statusCode": 429 inside a 200 or a 500.

No request is made before a Retry-After has passed (the pause holds every caller sharing the
budget), the run completes once the storm is over, and L = D = X = U = 0. (The request budget
itself, a sliding minute, is proven with a fake clock in tests/connectors/icompleat.)
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.icompleat.sandbox import SandboxServer
from tests.scenarios.harness import MakeWorld, World, make_world_fixture  # noqa: F401 (fixture)

RETRY_AFTER = 0.3


def run_through(world: World, **fault: Any) -> None:
    """A first load under the given throttling fault; it completes and converges."""
    world.sandbox.state.faults.set("*", throttle_rate=1.0, **fault)
    result = world.clean()
    assert result.outcome == "ok", result.to_dict()
    figures = world.check()
    assert figures.ok, str(figures)


def test_s05_retry_after_is_honoured(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """Four 429s with Retry-After 0.3 s: the next request never comes sooner."""
    world = make_world(icompleat={"max_backoff_seconds": 2.0})
    run_through(world, retry_after=RETRY_AFTER, times=4)
    entries = sandbox.state.log.entries()
    throttled = [i for i, e in enumerate(entries) if e.status == 429]
    assert len(throttled) == 4
    for i in throttled:
        assert entries[i + 1].at - entries[i].at >= RETRY_AFTER - 0.01, (entries[i],
                                                                         entries[i + 1])


def test_s05_without_retry_after(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """429s without Retry-After: bounded backoff, the run completes."""
    run_through(make_world(), times=3)
    assert sandbox.state.log.count(status=429) == 3


@pytest.mark.parametrize("status", [200, 500])
def test_s05_throttled_inside_the_body(make_world: MakeWorld, sandbox: SandboxServer,
                                       status: int) -> None:
    """{"statusCode": 429} in a 200 or a 500 body is throttling, not data nor a failure."""
    world = make_world()
    run_through(world, throttle_body_status=status, times=3)
    throttled = [e for e in sandbox.state.log.entries() if e.fault.startswith("throttle")]
    assert len(throttled) == 3
