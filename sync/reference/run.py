"""Reference runs as a command or the demo starts them: each company under its lease, in turn.

``icsync sync`` and the guided tour both call :func:`sync_companies`; the daemon's reference job
runs :func:`sync.reference.engine.sync_company` through the same lease wrapper
(:mod:`sync.runtime.jobrun`). A dry run takes no lease and writes nothing.

Rows read AHEAD of a company's lease (``icsync sync`` starts its first company's SQLite reads
while it is still starting up: :mod:`connectors.sql_ahead`) are used only when the lease was
seen free before those reads started and the run's lease is the very next holding of it
(:class:`~sync.state.rows.LeaseLook`). Otherwise another instance may have applied rows it
read after ours, and ours, older, would undo its creates and edits until the next run: the
rows read ahead are then dropped and each kind reads again under the lease.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import httpx

from connectors.sqlite_child import discard_ahead
from sync.foundation.config import CompanyConfig, Config
from sync.foundation.errors import ExitCode
from sync.foundation.logs import get_logger
from sync.reference.engine import CompanyResult, check_selection, sync_company
from sync.runtime.context import Runtime, open_runtime
from sync.runtime.jobrun import JobReport, LeasedJob
from sync.runtime.leases import LeaseGuardTransport
from sync.state.leases import REFERENCE_JOB, lease_name
from sync.state.rows import Fence, LeaseLook

JOB = REFERENCE_JOB  # the daemon's job name: both take the lease "<company>:reference"
log = get_logger("icsync.sync")


class Progress(Protocol):
    """Where a run reports its progress (a terminal's bar): planned calls, then calls made."""

    def plan(self, label: str, calls: int) -> None: ...

    def advance(self, calls: int) -> None: ...


# Called with a company's name for each applied company: a context manager giving its Progress.
ProgressFactory = Callable[[str], AbstractContextManager[Progress]]


async def sync_companies(
    config: Config, companies: Sequence[CompanyConfig], *, kinds: Sequence[str] | None = None,
    dry_run: bool = False, full: bool = False, allow_deletes: bool = False,
    progress: ProgressFactory | None = None, transport: httpx.AsyncBaseTransport | None = None,
    ahead: LeaseLook | None = None,
) -> list[CompanyResult]:
    """Plan or apply every company in turn; stop after a rejected credential. A selection
    that cannot run (unknown kind, no source) is a ConfigError before anything starts.
    ``ahead``: the lease of the company whose rows were read ahead, as seen before the reads
    started (see the module docstring)."""
    for company in companies:
        check_selection(company, kinds)
    guard = LeaseGuardTransport(transport) if transport is not None else LeaseGuardTransport()
    results: list[CompanyResult] = []
    async with open_runtime(config, transport=guard) as rt:
        for company in companies:
            if dry_run:
                result = await sync_company(rt, company, kinds=kinds, dry_run=True, full=full,
                                            allow_deletes=allow_deletes)
            else:
                result = await sync_leased(rt, company, kinds=kinds, full=full,
                                           allow_deletes=allow_deletes, progress=progress,
                                           ahead=ahead if ahead is not None and ahead.name
                                           == lease_name(company.name, JOB) else None)
            results.append(result)
            if result.outcome == "auth":
                break
    return results


async def sync_leased(rt: Runtime, company: CompanyConfig, *, kinds: Sequence[str] | None = None,
                      full: bool = False, allow_deletes: bool = False,
                      progress: ProgressFactory | None = None,
                      ahead: LeaseLook | None = None) -> CompanyResult:
    """Apply one company under its reference lease (waiting up to one lease time for another
    instance to finish), recorded in the runs table like the daemon's runs. Rows read ahead
    are dropped unless ``ahead`` shows nobody held the lease since before they were read."""

    async def action(fence: Fence) -> CompanyResult:
        if ahead is not None and not ahead.unbroken(fence):
            # Another holding came between: ours (read before it) may be older than its rows.
            log.info("read_ahead_dropped", company=company.name, seen_token=ahead.token,
                     token=fence.token)
            discard_ahead()
        if progress is None:
            return await sync_company(rt, company, kinds=kinds, full=full,
                                      allow_deletes=allow_deletes, fence=fence)
        with progress(company.name) as bar:
            return await sync_company(rt, company, kinds=kinds, full=full,
                                      allow_deletes=allow_deletes, fence=fence,
                                      on_plan=bar.plan, on_progress=bar.advance)

    job = LeasedJob(rt.store, company=company.name, job=JOB, holder=rt.holder,
                    lease_seconds=rt.config.settings.state.lease_seconds, action=action,
                    wait_doing="syncing this company")
    report = await job.run(JobReport(company.name, JOB, manual=True))
    return result_of(company.name, report)


def result_of(company: str, report: JobReport) -> CompanyResult:
    """The engine's result of a leased run, with the wrapper's word where it ended the run
    (lease lost, state DB down, lease held by another instance)."""
    found = report.result if isinstance(report.result, CompanyResult) else None
    result = found or CompanyResult(company)
    if report.outcome != result.outcome:
        result.outcome, result.error = report.outcome, report.error
        result.exit_code = ExitCode(report.exit_code)
    return result
