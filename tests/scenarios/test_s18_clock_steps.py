"""S18: the host clock steps 10 minutes forward and back.

Pass: no transaction missed or posted twice; leases keep their meaning (they run on the
DATABASE's clock, so a host step neither extends nor cuts them); schedules neither stall for the
size of a backward step nor count a forward step's skipped wall time as missed runs.

How the steps are simulated (documented, as no test may move the machine's clock): a time
offset hook. The daemon's wall clock (``ScheduledJob.wall``, the clock watch's samples) and the
process's ``time.time`` and host-time helpers are shifted by +/-600 s while the state database,
iCompleat and the monotonic clock keep real time, which is exactly what a host step looks like
from inside the process. On SQLite the database clock IS the host clock (one host only); the
lease test therefore runs on PostgreSQL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

import sync.foundation.clock
from connectors.icompleat.sandbox import SandboxServer
from sync.daemon.jobs import ScheduledJob
from sync.daemon.metrics import Metrics
from sync.daemon.schedules import ClockWatch, build_trigger
from sync.daemon.service import replan
from sync.runtime.context import open_runtime
from sync.state.store import Fence, QuarantineEntry, StateStore
from sync.transactions.poll import poll_company
from tests.daemon.world import approve, exactly_once, load, sql_sink, wait_for, write_config
from tests.fixtures.sandbox import TENANT_ID

STEP = 600.0


class _Ok:
    outcome, exit_code = "ok", 0

    def to_dict(self) -> dict[str, Any]:
        return {}


async def _ok(_fence: Fence) -> _Ok:
    return _Ok()


@pytest.fixture
def offset(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The host-clock offset hook: time.time and the host-time helpers shifted by offset[0]."""
    shift = [0.0]
    real_time, real_ns = time.time, time.time_ns
    monkeypatch.setattr(time, "time", lambda: real_time() + shift[0])
    monkeypatch.setattr(time, "time_ns", lambda: real_ns() + int(shift[0] * 1e9))
    host = lambda: datetime.now(UTC) + timedelta(seconds=shift[0])  # noqa: E731
    monkeypatch.setattr(sync.foundation.clock, "utcnow", host)
    return shift


def _host(shift: list[float]) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=shift[0])


def test_clock_watch_sees_steps_both_ways() -> None:
    """A 600 s jump of the wall clock against the monotonic one is a step; drift is not."""
    watch = ClockWatch(1000.0, 50.0)
    assert watch.step(1001.0, 51.0) is None
    assert watch.step(1002.0 + STEP, 52.0) == pytest.approx(STEP)
    assert watch.step(1003.0, 53.0) == pytest.approx(-STEP)
    assert watch.step(1004.5, 54.0) is None


@pytest.mark.postgres
def test_leases_ignore_host_clock_steps(offset: list[float], pg_database_url: str) -> None:
    """Stepped forward, another holder still cannot take a live lease; stepped back, the
    holder's lease does not last longer; fenced writes follow the database's clock."""
    with StateStore.open(pg_database_url) as store:
        fence = store.acquire_lease("acme:transactions", "a", 3)
        assert fence is not None
        offset[0] = STEP
        assert store.acquire_lease("acme:transactions", "b", 3) is None
        store.quarantine("acme", "suppliers", [QuarantineEntry("S1", "x", "m")], fence=fence)
        offset[0] = -STEP
        assert store.renew_lease(fence, 1.0)
        expires = next(lease for lease in store.leases() if lease.name == fence.name).expires_at
        assert abs((expires - datetime.now(UTC)).total_seconds() - 1.0) < 0.5
        time.sleep(1.2)
        assert store.acquire_lease("acme:transactions", "b", 3) is not None
        assert not store.renew_lease(fence, 3)


async def test_backward_step_does_not_stall_the_schedule(tmp_path: Path) -> None:
    """After a 10-minute step back, a 1 s job runs again within a second or two, not in 10 min."""
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        job = ScheduledJob(company="acme", job="transactions", action=_ok, store=store,
                           holder="me", lease_seconds=5, metrics=Metrics(),
                           trigger=build_trigger("1s"))
        job.last_slot = datetime.now(UTC) + timedelta(seconds=STEP)
        scheduler = AsyncIOScheduler(timezone=UTC)
        trigger = build_trigger("1s")
        # where APScheduler's next run stands when the host clock has just gone back 10 min
        scheduler.add_job(job.__call__, trigger, max_instances=1, coalesce=True,
                          next_run_time=datetime.now(UTC) + timedelta(seconds=STEP))
        scheduler.start()
        try:
            replan(scheduler, [job], -STEP)
            report = await wait_for(lambda: job.last, 5, "a run after the step")
        finally:
            scheduler.shutdown(wait=False)
        assert report.outcome == "ok"
        assert report.missed == 0


async def test_forward_step_is_not_counted_as_missed_runs(tmp_path: Path,
                                                          offset: list[float]) -> None:
    """A minute job whose host clock jumps 10 minutes runs once, with nothing counted missed."""
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        metrics = Metrics()
        job = ScheduledJob(company="acme", job="reference", action=_ok, store=store,
                           holder="me", lease_seconds=5, metrics=metrics,
                           trigger=build_trigger("1m"))
        start = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
        job.last_slot = start
        job.wall = lambda: start + timedelta(seconds=STEP + 60)
        job.shift(STEP)
        report = await job()
        assert (report.slots, report.missed) == (1, 0)
        unshifted = ScheduledJob(company="acme", job="readback", action=_ok, store=store,
                                 holder="me", lease_seconds=5, metrics=metrics,
                                 trigger=build_trigger("1m"),
                                 wall=lambda: start + timedelta(seconds=STEP + 60))
        unshifted.last_slot = start
        assert (await unshifted()).missed == 10, "without the shift the step looks like misses"


async def test_transactions_across_clock_steps_post_exactly_once(
        tmp_path: Path, sandbox: SandboxServer, offset: list[float]) -> None:
    """Poll runs before, after a 10-minute step forward, and after two steps back: every
    approved transaction is posted once, written back once, and none is left behind."""
    erp = tmp_path / "erp.db"
    config = load(write_config(tmp_path, sandbox.url, sink=sql_sink(erp)))
    company = config.settings.companies[0]
    async with open_runtime(config) as rt:
        job = ScheduledJob(company="acme", job="transactions",
                           action=lambda fence: poll_company(rt, company, fence=fence),
                           store=rt.store, holder=rt.holder, lease_seconds=5, metrics=Metrics(),
                           trigger=build_trigger("1m"), wall=lambda: _host(offset))
        numbers = iter(range(1, 100))
        for step in (0.0, STEP, -STEP, -STEP, STEP):
            offset[0] += step
            approve(sandbox, [next(numbers) for _ in range(4)])
            report = await job()
            assert report.outcome == "ok", report
            again = await job()
            assert again.kinds.get("transactions", {}).get("posted", 0) == 0
    lost, doubled, unexpected, disagree = exactly_once(sandbox, erp)
    assert (lost, doubled, unexpected, disagree) == ([], {}, [], {})
    assert len(sandbox.state.all_transactions(TENANT_ID)) == 20
