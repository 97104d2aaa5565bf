"""A daemon job: one company's reference sync, read-back or transaction poll, run under a lease.

Each run of a :class:`ScheduledJob`:

1. counts the schedule slots that fell due since the last run (more than one means runs were
   missed, because the previous run was still going or the daemon was down; they are coalesced
   into this one and COUNTED in the metrics and the run record);
2. skips the slot if another instance already ran it, or if the lease ``<company>:<job>`` is
   held by another live instance;
3. records the run in the state DB and runs the job with the lease's fence, which every state
   write checks; a :class:`~sync.fencing.LeaseKeeper` renews the lease every third of its time and
   cancels the run the moment it is lost;
4. records the outcome (fenced: an instance that lost its lease writes nothing), releases the
   lease, and updates metrics and the consecutive-failure count that ``/readyz`` reads.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from apscheduler.triggers.base import BaseTrigger

from sync.errors import ExitCode, IcsyncError, LeaseLost, exit_code_for
from sync.fencing import LeaseKeeper
from sync.logs import get_logger
from sync.metrics import Metrics
from sync.schedules import slots_between, unjittered
from sync.state.store import Fence, RunRow, StateStore

log = get_logger("icsync.jobs")

JOBS: tuple[str, ...] = ("reference", "readback", "transactions")
FAILING = frozenset({"failed", "auth", "error"})
HEALTHY = frozenset({"ok", "partial", "blocked"})


def is_failure(report: JobReport) -> bool:
    """A run that counts towards /readyz's failure streak: it failed, or it was "partial"
    because a dependency failed (a job-level error), not merely because rows were rejected."""
    return report.outcome in FAILING or (report.outcome == "partial" and bool(report.error))
_REFERENCE_COUNTS = ("created", "edited", "deleted", "unchanged", "rejected", "failed")
_TX_COUNTS = ("seen", "posted", "created", "written_back", "quarantined", "failed", "skipped")


class JobResult(Protocol):
    """What the engine's job functions return (CompanyResult, PollResult)."""

    @property
    def outcome(self) -> str: ...

    @property
    def exit_code(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...


Action = Callable[[Fence], Awaitable[JobResult]]
# The iCompleat calls of the run in progress (set per run; the client's hook counts into it).
_RUN_CALLS: ContextVar[list[int] | None] = ContextVar("icsync_run_calls", default=None)


def count_call() -> None:
    """Count one iCompleat call towards the run this code runs in (if any)."""
    calls = _RUN_CALLS.get()
    if calls is not None:
        calls[0] += 1


def lease_name(company: str, job: str) -> str:
    """The lease (and lock) name of one company's job."""
    return f"{company}:{job}"


def utcnow() -> datetime:
    """Now, on this host's clock, in UTC."""
    return datetime.now(UTC)


def counts_by_kind(result: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per-kind outcome counts from a result's ``to_dict()`` (reference or transactions)."""
    kinds = result.get("kinds")
    if isinstance(kinds, list):
        return {str(k.get("kind")): _numbers(k, _REFERENCE_COUNTS)
                for k in kinds if isinstance(k, Mapping)}
    counts = _numbers(result, _TX_COUNTS)
    return {"transactions": counts} if counts else {}


def _numbers(source: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, int]:
    return {n: int(source[n]) for n in names
            if isinstance(source.get(n), int) and not isinstance(source.get(n), bool)}


@dataclass
class JobReport:
    """What one scheduled run of a job did (also the run record's counts)."""

    company: str
    job: str
    outcome: str
    exit_code: int = int(ExitCode.OK)
    run_id: str = ""
    holder: str = ""
    token: int | None = None
    slots: int = 0
    missed: int = 0
    seconds: float = 0.0
    calls: int = 0
    error: str | None = None
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for logs, the run record and JSON output."""
        return asdict(self)


class ScheduledJob:
    """One company's job as the scheduler calls it; at most one run at a time per process."""

    def __init__(self, *, company: str, job: str, action: Action, store: StateStore,
                 holder: str, lease_seconds: float, metrics: Metrics, trigger: BaseTrigger,
                 wall: Callable[[], datetime] = utcnow,
                 on_report: Callable[[JobReport], None] | None = None) -> None:
        self.company, self.job, self.action = company, job, action
        self.store, self.holder, self.lease_seconds = store, holder, lease_seconds
        self.metrics, self.wall, self.on_report = metrics, wall, on_report
        self.counting = unjittered(trigger)
        self.name = lease_name(company, job)
        self.last_slot: datetime | None = None
        self.failures = 0
        self.last: JobReport | None = None
        self.task: asyncio.Task[Any] | None = None
        self.keeper: LeaseKeeper | None = None
        self.running = False
        self.stopping = False

    def shift(self, seconds: float) -> None:
        """The host clock stepped by ``seconds``: move the last slot with it (no false misses)."""
        if self.last_slot is not None:
            self.last_slot += timedelta(seconds=seconds)

    def drain(self) -> None:
        """Stop starting runs; a running one finishes its call in flight, then stops."""
        self.stopping = True
        if self.keeper is not None:
            self.keeper.draining = True

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
        report = JobReport(self.company, self.job, "error", run_id=uuid.uuid4().hex[:12],
                           holder=self.holder, slots=len(slots), missed=max(0, len(slots) - 1))
        try:
            fence = await asyncio.to_thread(self.store.acquire_lease, self.name, self.holder,
                                            self.lease_seconds)
        except IcsyncError as exc:  # the state DB is down or locked: a failed run, not a crash
            report.outcome, report.exit_code, report.error = "failed", exit_code_for(exc), str(exc)
            self._account(report)
            return report
        if fence is None:
            return self._skip("lease_held", "another instance holds the lease")
        report.token = fence.token
        with structlog.contextvars.bound_contextvars(
                run_id=report.run_id, company=self.company, job=self.job):
            await self._run_fenced(fence, report)
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
        return JobReport(self.company, self.job, "skipped", error=why, holder=self.holder)

    async def _run_fenced(self, fence: Fence, report: JobReport) -> None:
        keeper = self.keeper = LeaseKeeper(self.store, fence, self.lease_seconds)
        keeper.draining = self.stopping
        started = time.monotonic()
        self.metrics.running.labels(self.company, self.job).set(1)
        run_row: int | None = None
        calls = [0]
        counting = _RUN_CALLS.set(calls)
        try:
            run_row = await asyncio.to_thread(self.store.start_run, self.company, self.job,
                                              None, fence=fence)
            log.info("job_started", holder=self.holder, token=fence.token, slots=report.slots,
                     missed=report.missed, run_row=run_row)
            result = await keeper.run(self.action(fence))
            _fill(report, result)
        except LeaseLost as exc:
            if keeper.draining and keeper.lost is None:
                report.outcome, report.error = "stopped", str(exc)
            else:
                keeper.lost = keeper.lost or str(exc)
        except IcsyncError as exc:
            report.outcome, report.exit_code, report.error = "failed", exit_code_for(exc), str(exc)
        except Exception as exc:
            report.outcome, report.error = "error", repr(exc)
            report.exit_code = int(ExitCode.FAILED)
            log.exception("job_crashed")
        except asyncio.CancelledError:
            report.outcome, report.error = "cancelled", "stopped by shutdown"
            raise
        finally:
            _RUN_CALLS.reset(counting)
            report.seconds, report.calls = round(time.monotonic() - started, 3), calls[0]
            if keeper.lost is not None:
                report.outcome, report.error = "lease_lost", keeper.lost
            elif keeper.draining and report.outcome in FAILING:
                report.outcome = "stopped"
            await asyncio.shield(self._close(keeper, fence, run_row, report))

    async def _close(self, keeper: LeaseKeeper, fence: Fence, run_row: int | None,
                     report: JobReport) -> None:
        if run_row is not None and keeper.lost is None:
            counts = {k: v for k, v in report.to_dict().items() if k != "error"}
            try:
                await asyncio.to_thread(self.store.finish_run, run_row, report.outcome, counts,
                                        report.error, fence=fence)
            except LeaseLost as exc:  # the job's own code swallowed an earlier LeaseLost
                keeper.lost = str(exc)
                report.outcome, report.error = "lease_lost", str(exc)
            except IcsyncError as exc:
                log.warning("run_record_failed", error=str(exc))
        await keeper.release()
        self._account(report)

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
        level = "warning" if report.outcome in FAILING | {"lease_lost"} else "info"
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


def _fill(report: JobReport, result: JobResult) -> None:
    data = result.to_dict()
    report.outcome = result.outcome
    report.exit_code = int(result.exit_code)
    report.error = first_error(data)
    report.kinds = counts_by_kind(data)


def first_error(result: Mapping[str, Any]) -> str | None:
    """The error a result reports: its own, else its first problem, else its kinds' errors."""
    if isinstance(result.get("error"), str):
        return str(result["error"])
    problems = result.get("problems")
    if isinstance(problems, list) and problems:
        return str(problems[0]) + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    kinds = result.get("kinds")
    errors = [f"{k.get('kind')}: {k['error']}" for k in kinds or []
              if isinstance(k, Mapping) and isinstance(k.get("error"), str)]
    return "; ".join(errors) or None
