"""S17: a job longer than its interval, a daemon down across three slots, a DST change.

Pass: at most one instance of a job at a time; missed runs coalesce into ONE run and are
counted (metrics and the run record); schedules are UTC unless a zone is given, and a zone's DST
change follows the documented rule (sync/daemon/schedules.py): a wall time skipped by spring-forward
fires once after the gap, a wall time repeated by fall-back fires once. Waiting is done with
crafted times through the triggers' get_next_fire_time, except for the short real-time run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from sync.daemon.jobs import ScheduledJob
from sync.daemon.metrics import Metrics
from sync.daemon.schedules import build_trigger, slots_between
from sync.state.store import Fence, StateStore

LONDON = ZoneInfo("Europe/London")


class _Ok:
    outcome, exit_code = "ok", 0

    def to_dict(self) -> dict[str, Any]:
        return {}


class _Body:
    """A job body that takes ``seconds`` and records how many run at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.active, self.most, self.runs = seconds, 0, 0, 0

    async def __call__(self, _fence: Fence) -> _Ok:
        self.active += 1
        self.most = max(self.most, self.active)
        self.runs += 1
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.active -= 1
        return _Ok()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A fresh SQLite state DB."""
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def _job(store: StateStore, body: Any, schedule: str, metrics: Metrics, **kw: Any
         ) -> ScheduledJob:
    return ScheduledJob(company="acme", job="reference", action=body, store=store,
                        holder="me", lease_seconds=10, metrics=metrics,
                        trigger=build_trigger(schedule), **kw)


async def test_job_longer_than_its_interval(store: StateStore) -> None:
    """A 2.5 s job on a 1 s schedule: never two at once; the skipped slots are counted."""
    metrics, body = Metrics(), _Body(2.5)
    job = _job(store, body, "1s", metrics)
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(job.__call__, build_trigger("1s"), max_instances=1, coalesce=True,
                      misfire_grace_time=30, next_run_time=datetime.now(UTC))
    scheduler.start()
    try:
        await asyncio.sleep(4.2)
    finally:
        scheduler.pause()
    if job.task is not None:
        await asyncio.wait({job.task}, timeout=5)
    scheduler.shutdown(wait=False)
    assert body.most == 1
    assert body.runs == 2
    runs = [r for r in store.last_runs("acme") if r.outcome == "ok"]
    assert len(runs) == 2
    second = max(runs, key=lambda r: r.id)
    assert second.counts["missed"] >= 1
    assert metrics.missed.labels("acme", "reference")._value.get() == second.counts["missed"]


async def test_daemon_down_across_three_slots_runs_once(store: StateStore) -> None:
    """Restarted after three hourly slots passed: one catch-up run, two counted as missed."""
    metrics = Metrics()
    first = _job(store, _Body(0), "1h", metrics)
    await first()
    last = store.last_runs("acme")[0].started_at
    slots = slots_between(build_trigger("1h"), last, last + timedelta(hours=5))
    restart = slots[2] + timedelta(minutes=30)  # three hourly slots passed while down
    body = _Body(0)
    job = _job(store, body, "1h", metrics, wall=lambda: restart)
    when = await job.prime(jitter=0, now=restart)
    assert when == restart
    report = await job()
    assert body.runs == 1
    assert (report.slots, report.missed) == (3, 2)
    assert store.last_runs("acme")[0].counts["missed"] == 2
    assert metrics.missed.labels("acme", "reference")._value.get() == 2

async def test_restart_within_a_slot_does_not_run_again(store: StateStore) -> None:
    """A restart before the next slot waits for that slot (no extra run)."""
    await _job(store, _Body(0), "1h", Metrics())()
    last = store.last_runs("acme")[0].started_at
    nxt = next(s for s in slots_between(build_trigger("1h"), last, last + timedelta(hours=2)))
    assert await _job(store, _Body(0), "1h", Metrics()).prime(
        jitter=0, now=last + (nxt - last) / 2) is None


def test_utc_is_the_default_and_ignores_dst() -> None:
    """A cron job without a zone fires every 24 hours exactly across the UK DST changes."""
    trigger = build_trigger("0 2 * * *")
    for start in (datetime(2024, 3, 29, tzinfo=UTC), datetime(2024, 10, 25, tzinfo=UTC)):
        slots = slots_between(trigger, start, start + timedelta(days=4))
        gaps = {b - a for a, b in pairwise(slots)}
        assert gaps == {timedelta(hours=24)}


def test_dst_in_a_zone_fires_once_per_wall_time() -> None:
    """London, 01:30 daily: once on the spring-forward day (02:30 BST) and once at fall-back."""
    trigger = build_trigger("30 1 * * *", timezone="Europe/London")
    spring = slots_between(trigger, datetime(2024, 3, 30, 12, tzinfo=UTC),
                           datetime(2024, 4, 1, 12, tzinfo=UTC))
    assert [s.astimezone(LONDON).strftime("%d %H:%M %Z") for s in spring] == [
        "31 02:30 BST", "01 01:30 BST"]
    autumn = slots_between(trigger, datetime(2024, 10, 26, 12, tzinfo=UTC),
                           datetime(2024, 10, 28, 12, tzinfo=UTC))
    assert [s.astimezone(LONDON).strftime("%d %H:%M %Z") for s in autumn] == [
        "27 01:30 BST", "28 01:30 GMT"]


def test_hourly_cron_over_the_fall_back_night_never_doubles() -> None:
    """Hourly in London over the 25-hour day: 24 runs, no wall-clock hour twice, in order."""
    trigger = build_trigger("0 * * * *", timezone="Europe/London")
    day = slots_between(trigger, datetime(2024, 10, 26, 22, 59, tzinfo=UTC),
                        datetime(2024, 10, 27, 23, 59, tzinfo=UTC))
    walls = [s.astimezone(LONDON).replace(tzinfo=None) for s in day]
    assert len(day) == 24
    assert len(set(walls)) == len(walls)
    assert [s.timestamp() for s in day] == sorted({s.timestamp() for s in day})


async def test_down_over_the_dst_night_counts_one_slot(store: StateStore) -> None:
    """Down from before to after the repeated 01:30: that slot counts once, not twice."""
    metrics = Metrics()
    job = ScheduledJob(company="acme", job="readback", action=_Body(0), store=store,
                       holder="me", lease_seconds=10, metrics=metrics,
                       trigger=build_trigger("30 1 * * *", timezone="Europe/London"),
                       wall=lambda: datetime(2024, 10, 27, 3, 0, tzinfo=UTC))
    job.last_slot = datetime(2024, 10, 26, 23, 0, tzinfo=UTC)
    report = await job()
    assert (report.slots, report.missed) == (1, 0)
