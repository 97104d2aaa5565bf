"""Jobs under leases on a real SQLite state DB: one runner, renewal, loss, missed slots."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.daemon.jobs import ScheduledJob
from sync.daemon.metrics import Metrics
from sync.daemon.schedules import build_trigger
from sync.foundation.errors import ExitCode, LeaseLost
from sync.runtime.jobrun import counts_by_kind
from sync.runtime.leases import LeaseGuardTransport, LeaseKeeper, check_lease
from sync.state.leases import lease_name
from sync.state.store import Fence, StateStore


@dataclass
class _Result:
    outcome: str = "ok"
    exit_code: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, **self.extra}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A fresh SQLite state DB."""
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


class _Action:
    """A job body that records the fences it ran with."""

    def __init__(self, *, seconds: float = 0.0, result: _Result | None = None,
                 error: BaseException | None = None) -> None:
        self.seconds, self.result, self.error = seconds, result or _Result(), error
        self.fences: list[Fence] = []

    async def __call__(self, fence: Fence) -> _Result:
        self.fences.append(fence)
        await asyncio.sleep(self.seconds)
        if self.error is not None:
            raise self.error
        return self.result


def _job(store: StateStore, action: _Action, *, holder: str = "me", ttl: float = 5.0,
         schedule: str = "1m", metrics: Metrics | None = None, **kw: Any) -> ScheduledJob:
    return ScheduledJob(company="uk", job="reference", action=action, store=store,
                        holder=holder, lease_seconds=ttl, metrics=metrics or Metrics(),
                        trigger=build_trigger(schedule), **kw)


async def test_a_run_is_fenced_recorded_and_released(store: StateStore) -> None:
    """A run gets a fence for uk:reference, writes its run record, and frees the lease."""
    action = _Action(result=_Result(extra={"kinds": [{"kind": "suppliers", "created": 2}]}))
    report = await _job(store, action)()
    assert report.outcome == "ok"
    assert [f.name for f in action.fences] == [lease_name("uk", "reference")]
    run = store.last_runs("uk")[0]
    assert (run.job, run.outcome) == ("reference", "ok")
    assert run.counts["holder"] == "me"
    assert run.counts["kinds"] == {"suppliers": {"created": 2}}
    assert not [lease for lease in store.leases() if lease.live]


async def test_lease_held_elsewhere_skips_without_running(store: StateStore) -> None:
    """Another live holder means the job body never runs here."""
    assert store.acquire_lease("uk:reference", "other", 30) is not None
    action = _Action()
    report = await _job(store, action)()
    assert report.outcome == "skipped"
    assert action.fences == []
    assert store.last_runs("uk") == []


async def test_at_most_one_instance_in_process(store: StateStore) -> None:
    """A second call while the first runs is skipped, not started."""
    action = _Action(seconds=0.3)
    job = _job(store, action)
    first = asyncio.create_task(job())
    await asyncio.sleep(0.05)
    second = await job()
    assert second.outcome == "skipped"
    assert (await first).outcome == "ok"
    assert len(action.fences) == 1


async def test_renewal_keeps_a_long_run_alive(store: StateStore) -> None:
    """A run three times longer than the lease time keeps its lease by renewing it."""
    action = _Action(seconds=1.2)
    report = await _job(store, action, ttl=0.4)()
    assert report.outcome == "ok"
    assert store.acquire_lease("uk:reference", "other", 30) is not None


async def test_lost_lease_cancels_the_run_and_writes_nothing(store: StateStore) -> None:
    """When another instance takes the lease over, the run is cancelled and not recorded."""
    metrics = Metrics()
    action = _Action(seconds=5)
    job = _job(store, action, ttl=0.6, metrics=metrics)
    task = asyncio.create_task(job())
    for _ in range(500):  # until the job holds its lease (bounded: 5 s)
        if action.fences:
            break
        await asyncio.sleep(0.01)
    store.release_lease(action.fences[0])
    assert store.acquire_lease("uk:reference", "thief", 30) is not None
    report = await asyncio.wait_for(task, 10)
    assert report.outcome == "lease_lost"
    assert store.last_runs("uk")[0].outcome is None
    assert next(lease for lease in store.leases()).holder == "thief"
    assert metrics.lease_lost.labels("uk", "reference")._value.get() == 1


async def test_swallowed_lease_loss_is_still_reported(store: StateStore) -> None:
    """A body that turns LeaseLost into a failed result is reported as lease_lost."""

    async def body(fence: Fence) -> _Result:
        store.release_lease(fence)
        store.acquire_lease(fence.name, "thief", 30)
        return _Result("failed", int(ExitCode.FAILED))

    job = ScheduledJob(company="uk", job="reference", action=body, store=store, holder="me",
                       lease_seconds=5, metrics=Metrics(), trigger=build_trigger("1m"))
    report = await job()
    assert report.outcome == "lease_lost"
    assert job.failures == 0


async def test_failures_in_a_row_then_recovery(store: StateStore) -> None:
    """Failed runs count up; a healthy run resets the count; crashes count as failures."""
    failing = _job(store, _Action(result=_Result("failed", 1)))
    for _ in range(2):
        await failing()
    failing.action = _Action(error=RuntimeError("boom"))
    crashed = await failing()
    assert (crashed.outcome, failing.failures) == ("error", 3)
    failing.action = _Action()
    await failing()
    assert failing.failures == 0
    assert not [lease for lease in store.leases() if lease.live]


async def test_missed_slots_are_coalesced_and_counted(store: StateStore) -> None:
    """Three hourly slots passed since the last run: one run, two counted as missed."""
    now = datetime(2024, 5, 1, 3, 30, tzinfo=UTC)
    metrics = Metrics()
    job = _job(store, _Action(), schedule="1h", metrics=metrics, wall=lambda: now)
    job.last_slot = now - timedelta(hours=3)
    report = await job()
    assert (report.slots, report.missed) == (3, 2)
    assert store.last_runs("uk")[0].counts["missed"] == 2
    assert metrics.missed.labels("uk", "reference")._value.get() == 2


async def test_slot_already_run_elsewhere_is_skipped(store: StateStore) -> None:
    """A run by another instance after the current slot means this slot is done."""
    other = _job(store, _Action(), holder="other")
    await other()
    now = datetime.now(UTC)
    action = _Action()
    job = _job(store, action, schedule="1h", wall=lambda: now + timedelta(seconds=1))
    job.last_slot = now - timedelta(hours=1)
    report = await job()
    assert report.outcome == "skipped"
    assert action.fences == []


async def test_prime_catches_up_once_after_downtime(store: StateStore) -> None:
    """A job last run three slots ago runs soon; a fresh cron job waits for its slot."""
    await _job(store, _Action(), holder="old")()
    later = datetime.now(UTC) + timedelta(hours=3)
    hourly = _job(store, _Action(), schedule="1h")
    first = await hourly.prime(jitter=0, now=later)
    assert first == later
    fresh_cron = _job(store, _Action(), schedule="0 2 * * *")
    fresh_cron.job = "readback"
    assert await fresh_cron.prime(jitter=0) is None
    fresh_interval = _job(store, _Action(), schedule="5m")
    fresh_interval.job = "transactions"
    soon = await fresh_interval.prime(jitter=2)
    assert soon is not None
    assert soon - datetime.now(UTC) < timedelta(seconds=3)


async def test_keeper_deadline_refuses_writes_after_a_pause(store: StateStore) -> None:
    """Past its local deadline (a paused process) a job sends no write; reads still go."""
    clock = [0.0]
    fence = store.acquire_lease("uk:reference", "me", 10)
    assert fence is not None
    keeper = LeaseKeeper(store, fence, 10, clock=lambda: clock[0])
    sent: list[str] = []
    inner = httpx.MockTransport(lambda r: sent.append(r.method) or httpx.Response(200))
    client = httpx.AsyncClient(transport=LeaseGuardTransport(inner), base_url="http://x")

    async def body() -> None:
        await client.post("/a")
        clock[0] = 60.0
        await client.get("/b")
        with pytest.raises(LeaseLost, match="nothing more is sent"):
            await client.put("/c")
        with pytest.raises(LeaseLost):
            check_lease()

    await keeper.run(body())
    assert keeper.lost is not None
    assert sent == ["POST", "GET"]
    await client.aclose()


def test_check_lease_outside_a_job_is_a_no_op() -> None:
    """Code not running under a lease (the webhook, a one-shot command) is not refused."""
    check_lease()


def test_counts_by_kind_for_both_result_shapes() -> None:
    """Reference results count per kind; poll results count under 'transactions'."""
    ref = {"kinds": [{"kind": "tax_codes", "created": 1, "edited": 0, "strategy": "x"}]}
    assert counts_by_kind(ref) == {"tax_codes": {"created": 1, "edited": 0}}
    poll = {"seen": 3, "posted": 2, "quarantined": 0, "company": "uk", "flag": True}
    assert counts_by_kind(poll) == {"transactions": {"seen": 3, "posted": 2, "quarantined": 0}}
