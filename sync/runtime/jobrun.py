"""Run one company job under its lease: the one wrapper of ``icsync sync``, ``icsync poll`` and
the daemon's scheduled jobs, so all three fail, record and release the same way.

A run:

1. takes the lease ``<company>:<job>``: the daemon tries once and skips the slot when another
   live instance holds it; a command waits up to one lease time (``wait_doing`` says what the
   holder is doing, for the error). A state DB that is down or locked makes a failed run;
2. records the run in the state DB and runs the job with the lease's fence, which every state
   write checks; a :class:`~sync.runtime.leases.LeaseKeeper` renews the lease every third of
   its time and cancels the job the moment it is lost;
3. turns whatever ends the job into an outcome, never an exception: the job's own result, a
   project error (failed, with its exit code), a lost lease (``lease_lost``), an unexpected
   exception (``error``, logged with its traceback); a cancellation still propagates;
4. records the outcome and counts (fenced: an instance that lost its lease writes nothing) and
   releases the lease, even while being cancelled.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sync.foundation.errors import ExitCode, IcsyncError, LeaseLost, exit_code_for
from sync.foundation.logs import bound, get_logger
from sync.foundation.outcomes import FAILING, Outcome
from sync.runtime.leases import LeaseKeeper, take_lease
from sync.state.leases import lease_name
from sync.state.store import Fence, StateStore

log = get_logger("icsync.jobs")

_REFERENCE_COUNTS = ("created", "edited", "deleted", "unchanged", "rejected", "failed", "blank",
                     "filtered")
_TX_COUNTS = ("seen", "posted", "created", "written_back", "quarantined", "failed", "skipped")


class JobResult(Protocol):
    """What a job returns (the reference engine's CompanyResult, the poller's PollResult)."""

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


@dataclass
class JobReport:
    """What one run of a job did (also the run record's counts); ``result`` is the job's own."""

    company: str
    job: str
    outcome: str = Outcome.ERROR
    exit_code: int = int(ExitCode.FAILED)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    holder: str = ""
    token: int | None = None
    slots: int = 0
    missed: int = 0
    seconds: float = 0.0
    calls: int = 0
    error: str | None = None
    manual: bool = False
    operational: bool = False  # a dependency failed (see operational_problem)
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)
    result: JobResult | None = field(default=None, repr=False, compare=False)

    def fail(self, outcome: Outcome, code: int, error: str) -> JobReport:
        """Mark the run ended by ``error``; returns self."""
        self.outcome, self.exit_code, self.error = outcome, int(code), error
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data for logs, the run record and JSON output."""
        data = asdict(self)
        data.pop("result", None)
        data["outcome"] = str(self.outcome)
        return data


class LeasedJob:
    """One company's job, run under its lease by :meth:`run`; :meth:`drain` stops it gently."""

    def __init__(self, store: StateStore, *, company: str, job: str, holder: str,
                 lease_seconds: float, action: Action, wait_doing: str | None = None) -> None:
        self.store, self.company, self.job, self.holder = store, company, job, holder
        self.lease_seconds, self.action, self.wait_doing = lease_seconds, action, wait_doing
        self.keeper: LeaseKeeper | None = None
        self.draining = False
        self.on_started: Callable[[JobReport], None] | None = None

    @property
    def name(self) -> str:
        """The lease name."""
        return lease_name(self.company, self.job)

    def drain(self) -> None:
        """Let the call in flight finish, then stop (a drained run ends ``stopped``)."""
        self.draining = True
        if self.keeper is not None:
            self.keeper.draining = True

    async def run(self, report: JobReport | None = None) -> JobReport:
        """Run the job once under its lease; the report says how it ended (never raises an
        icsync error; ``skipped`` when another instance holds the lease and no wait was asked)."""
        report = report or JobReport(self.company, self.job)
        report.holder = self.holder
        try:
            fence = await self._acquire()
        except IcsyncError as exc:  # the state DB is down or locked, or the lease stayed held
            return report.fail(outcome_of(exc), exit_code_for(exc), str(exc))
        if fence is None:
            return report.fail(Outcome.SKIPPED, ExitCode.OK, "another instance holds the lease")
        report.token = fence.token
        with bound(
                run_id=report.run_id, company=self.company, job=self.job):
            await self._run_fenced(fence, report)
        return report

    async def _acquire(self) -> Fence | None:
        if self.wait_doing is None:
            return await asyncio.to_thread(self.store.acquire_lease, self.name, self.holder,
                                           self.lease_seconds)
        return await take_lease(self.store, self.name, self.holder, self.lease_seconds,
                                doing=self.wait_doing)

    async def _run_fenced(self, fence: Fence, report: JobReport) -> None:
        keeper = self.keeper = LeaseKeeper(self.store, fence, self.lease_seconds)
        keeper.draining = self.draining
        started = time.monotonic()
        run_row: int | None = None
        calls = [0]
        counting = _RUN_CALLS.set(calls)
        try:
            run_row = await asyncio.to_thread(self.store.start_run, self.company, self.job,
                                              None, fence=fence, holder=self.holder)
            log.info("job_started", holder=self.holder, token=fence.token, slots=report.slots,
                     missed=report.missed, run_row=run_row)
            if self.on_started is not None:
                self.on_started(report)
            fill(report, await keeper.run(self.action(fence)))
        except LeaseLost as exc:
            if keeper.draining and keeper.lost is None:
                report.fail(Outcome.STOPPED, ExitCode.OK, str(exc))
            else:
                keeper.lost = keeper.lost or str(exc)
        except IcsyncError as exc:
            report.fail(outcome_of(exc), exit_code_for(exc), str(exc))
        except Exception as exc:
            report.fail(Outcome.ERROR, ExitCode.FAILED, repr(exc))
            log.exception("job_crashed")
        except asyncio.CancelledError:
            report.fail(Outcome.CANCELLED, ExitCode.FAILED, "stopped by shutdown")
            raise
        finally:
            _RUN_CALLS.reset(counting)
            report.seconds, report.calls = round(time.monotonic() - started, 3), calls[0]
            if keeper.lost is not None:
                report.fail(Outcome.LEASE_LOST, ExitCode.FAILED, keeper.lost)
            elif keeper.draining and report.outcome in FAILING:
                report.outcome = Outcome.STOPPED
            await asyncio.shield(self._close(keeper, fence, run_row, report))
            self.keeper = None

    async def _close(self, keeper: LeaseKeeper, fence: Fence, run_row: int | None,
                     report: JobReport) -> None:
        if run_row is not None and keeper.lost is None:
            counts = {k: v for k, v in report.to_dict().items() if k != "error"}
            try:
                await asyncio.to_thread(self.store.finish_run, run_row, str(report.outcome),
                                        counts, report.error, fence=fence)
            except LeaseLost as exc:  # the job's own code swallowed an earlier LeaseLost
                keeper.lost = str(exc)
                report.fail(Outcome.LEASE_LOST, ExitCode.FAILED, str(exc))
            except IcsyncError as exc:
                log.warning("run_record_failed", error=str(exc))
        await keeper.release()


def outcome_of(exc: IcsyncError) -> Outcome:
    """The outcome of a run ended by ``exc``: ``auth`` for rejected credentials, else failed."""
    return Outcome.AUTH if exit_code_for(exc) == ExitCode.AUTH else Outcome.FAILED


def fill(report: JobReport, result: JobResult) -> None:
    """Take outcome, exit code, first error and per-kind counts from the job's result."""
    data = result.to_dict()
    report.result = result
    report.outcome = str(result.outcome)
    report.exit_code = int(result.exit_code)
    report.error = first_error(data)
    report.kinds = counts_by_kind(data)
    report.operational = operational_problem(data)


def operational_problem(result: Mapping[str, Any]) -> bool:
    """True when a result's run met a failing dependency: its own error, a kind that could not
    be read or written, or a transaction that failed for a passing reason (ERP or iCompleat
    down); rows rejected and transactions the ERP refused (quarantined) are not."""
    if isinstance(result.get("error"), str):
        return True
    kinds = result.get("kinds")
    if isinstance(kinds, list):
        return any(isinstance(k, Mapping) and isinstance(k.get("error"), str) for k in kinds)
    failed = result.get("failed")
    return isinstance(failed, int) and not isinstance(failed, bool) and failed > 0


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
