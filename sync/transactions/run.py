"""Transaction passes as a command or the demo starts them: each company under its lease.

``icsync poll`` and the guided tour call :func:`poll_all`; the daemon's transactions job runs
:func:`sync.transactions.poll.poll_company` through the same lease wrapper
(:mod:`sync.runtime.jobrun`), taking the same lease ``<company>:transactions``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sync.foundation.config import CompanyConfig, Config
from sync.foundation.errors import ConfigError, ExitCode
from sync.runtime.context import Runtime, open_runtime
from sync.runtime.jobrun import JobReport, LeasedJob
from sync.state.rows import Fence
from sync.transactions.poll import poll_company
from sync.transactions.rules import PollResult

JOB = "transactions"  # the daemon's job name: both take the lease "<company>:transactions"


def posting_companies(config: Config) -> list[CompanyConfig]:
    """The configured companies that post transactions (a sink and at least one type)."""
    companies = [c for c in config.settings.companies if c.sink and c.transaction_types]
    if not companies:
        raise ConfigError("no company posts transactions: give one a sink = \"NAME\" (with a "
                          "[sinks.NAME] table) and transaction_types", key="companies")
    return companies


async def poll_all(config: Config, companies: Sequence[CompanyConfig]) -> list[PollResult]:
    """One pass per company, one after the other, each under its lease."""
    async with open_runtime(config) as rt:
        return [await poll_leased(rt, company) for company in companies]


async def poll_leased(rt: Runtime, company: CompanyConfig) -> PollResult:
    """Poll ``company`` while holding its transactions lease: taken (waiting at most one lease
    time for a live holder to finish or a dead one's lease to expire), renewed every third of
    the lease time, released after; a lost lease ends the pass."""

    async def action(fence: Fence) -> PollResult:
        return await poll_company(rt, company, fence=fence)

    job = LeasedJob(rt.store, company=company.name, job=JOB, holder=rt.holder,
                    lease_seconds=rt.config.settings.state.lease_seconds, action=action,
                    wait_doing="polling this company")
    report = await job.run(JobReport(company.name, JOB, manual=True))
    result = report.result if isinstance(report.result, PollResult) else PollResult(company.name)
    if report.outcome != result.outcome:  # the wrapper's word: lease lost, state DB down...
        result.fail(report.outcome, ExitCode(report.exit_code), report.error or report.outcome)
    return result
