"""A daemon job: one company's reference sync, read-back or transaction poll, on a schedule.

Each run of a :class:`ScheduledJob` counts the schedule slots that fell due since the last run
(more than one means runs were missed, because the previous run was still going or the daemon
was down; they are coalesced into this one and COUNTED in the metrics and the run record),
skips the slot if another instance already ran it, then runs the job through the one wrapper of
:mod:`sync.runtime.jobrun` (lease, fenced run record, outcome, release) and updates the metrics
and the consecutive-failure count that ``/readyz`` reads.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from sync.daemon.metrics import Metrics
from sync.daemon.schedules import slots_between, unjittered
from sync.foundation import clock
from sync.foundation.errors import ExitCode, IcsyncError
from sync.foundation.logs import get_logger
from sync.foundation.outcomes import FAILING, HEALTHY, Outcome
from sync.runtime.jobrun import (
    Action,
    JobReport,
    LeasedJob,
)
from sync.runtime.leases import LeaseKeeper
from sync.state.leases import lease_name
from sync.state.store import RunRow, StateStore

log = get_logger("icsync.jobs")

JOBS: tuple[str, ...] = ("reference", "readback", "transactions")


def is_failure(report: JobReport) -> bool:
    """A run that counts towards /readyz's failure streak: it failed, or it was "partial"
    because a dependency failed (see :func:`sync.runtime.jobrun.operational_problem`); business
    outcomes (rejected rows, quarantined transactions waiting for their retry) never make the
    service unready."""
    return report.outcome in FAILING or (report.outcome == "partial" and report.operational)


class ScheduledJob:
    """One company's job as the scheduler calls it; at most one run at a time per process."""

    def __init__(self, *, company: str, job: str, action: Action, store: StateStore,
                 holder: str, lease_seconds: float, metrics: Metrics, trigger: BaseTrigger,
                 wall: Callable[[], datetime] = clock.utcnow,
                 on_report: Callable[[JobReport], None] | None = None) -> None:
        self.company, self.job = company, job
        self.store, self.holder, self.lease_seconds = store, holder, lease_seconds
        self.metrics, self.wall, self.on_report = metrics, wall, on_report
        self.counting = unjittered(trigger)
        self.name = lease_name(company, job)
        self.leased = LeasedJob(store, company=company, job=job, holder=holder,
                                lease_seconds=lease_seconds, action=action)
        self.leased.on_started = self._started
        self.last_slot: datetime | None = None
        self.failures = 0
        self.last: JobReport | None = None
        self.task: asyncio.Task[Any] | None = None
        self.running = False
        self.stopping = False

    def shift(self, seconds: float) -> None:
        """The host clock stepped by ``seconds``: move the last slot with it (no false misses)."""
        if self.last_slot is not None:
            self.last_slot += timedelta(seconds=seconds)

    @property
    def action(self) -> Action:
        """What a run does (the engine's job function)."""
        return self.leased.action

    @action.setter
    def action(self, action: Action) -> None:
        self.leased.action = action

    @property
    def keeper(self) -> LeaseKeeper | None:
        """The lease keeper of the run in progress, if any."""
        return self.leased.keeper

    def drain(self) -> None:
        """Stop starting runs; a running one finishes its call in flight, then stops."""
        self.stopping = True
        self.leased.drain()

    async def __call__(self) -> JobReport:
        """One scheduled run (APScheduler calls this)."""
        if self.stopping:
            return self._skip("stopping", "the daemon is stopping")
        if self.running:
            return self._skip("running", "the previous run is still going")
        self.running, self.task = True, asyncio.current_task()
        try:
            return await self._run()
        finally:
            self.running = False

    async def _run(self) -> JobReport:
        now = self.wall()
        slots = self._due_slots(now)
        self.last_slot = now
        if slots and await self._done_elsewhere(slots[-1]):
            return self._skip("done_elsewhere", "another instance already ran this slot")
        report = JobReport(self.company, self.job, slots=len(slots), missed=max(0, len(slots) - 1))
        try:
            await self.leased.run(report)
        finally:  # a cancelled run is accounted too (the gauges must not stay "running")
            if report.outcome != Outcome.SKIPPED:
                self._account(report)
        if report.outcome == Outcome.SKIPPED:
            return self._skip("lease_held", "another instance holds the lease")
        return report

    def _due_slots(self, now: datetime) -> list[datetime]:
        if self.last_slot is None:
            return []
        return slots_between(self.counting, self.last_slot, now)

    async def _done_elsewhere(self, slot: datetime) -> bool:
        try:
            runs = await asyncio.to_thread(self.store.last_runs, self.company, 20)
        except IcsyncError:
            return False
        return any(r.job == self.job and r.started_at >= slot
                   and r.counts.get("holder") != self.holder for r in runs)

    def _skip(self, reason: str, why: str) -> JobReport:
        self.metrics.skipped.labels(self.company, self.job, reason).inc()
        log.info("job_skipped", company=self.company, job=self.job, reason=reason, detail=why)
        return JobReport(self.company, self.job, Outcome.SKIPPED, int(ExitCode.OK), error=why,
                         holder=self.holder)

    def _started(self, report: JobReport) -> None:
        self.metrics.running.labels(self.company, self.job).set(1)

    def _account(self, report: JobReport) -> None:
        self.last = report
        metrics = self.metrics
        metrics.running.labels(self.company, self.job).set(0)
        metrics.record_run(self.company, self.job, report.outcome, report.seconds)
        if report.missed:
            metrics.missed.labels(self.company, self.job).inc(report.missed)
        if report.outcome == "lease_lost":
            metrics.lease_lost.labels(self.company, self.job).inc()
        for kind, counts in report.kinds.items():
            metrics.record_counts(self.company, self.job, kind, counts)
            if report.outcome in HEALTHY and self.job != "readback" and not counts.get("failed"):
                metrics.mark_success(self.company, kind)
        if is_failure(report):
            self.failures += 1
        elif report.outcome in HEALTHY:
            self.failures = 0
        metrics.failures.labels(self.company, self.job).set(self.failures)
        level = "warning" if report.outcome in FAILING | {Outcome.LEASE_LOST} else "info"
        getattr(log, level)("job_finished", **report.to_dict())
        if self.on_report is not None:
            try:
                self.on_report(report)
            except Exception as exc:  # a report listener must never break the schedule
                log.warning("report_listener_failed", error=repr(exc))

    async def prime(self, *, jitter: float, now: datetime | None = None) -> datetime | None:
        """Set up from the state DB before the first run; the first run time, or None.

        A job whose last recorded run is older than a due slot runs once soon (a coalesced
        catch-up, counting the slots it missed); an interval job never run before runs soon too.
        """
        now = now or self.wall()
        last = await asyncio.to_thread(self._last_start)
        self.last_slot = last
        delay = timedelta(seconds=random.uniform(0, jitter) if jitter > 0 else 0)
        if last is None:
            due_now = not _is_cron(self.counting)
        else:
            due_now = bool(slots_between(self.counting, last, now))
        if due_now:
            return now + delay
        return None

    def _last_start(self) -> datetime | None:
        try:
            runs: list[RunRow] = self.store.last_runs(self.company, 50)
        except IcsyncError as exc:
            log.warning("run_history_unavailable", company=self.company, error=str(exc))
            return None
        starts = [r.started_at for r in runs if r.job == self.job]
        return max(starts) if starts else None


def _is_cron(trigger: BaseTrigger) -> bool:
    return hasattr(trigger, "fields")
