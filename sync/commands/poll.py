"""``icsync poll``: one pass posting approved transactions into the ERP, for every company or one.

Each company's pass runs under the lease ``<company>:transactions`` (the daemon's job takes the
same one), renewed while it runs; a lease left by a killed process is taken over once it expires.
Prints a summary table (or one JSON document with ``--json``) and exits with the worst code:
0 done, 1 unexpected, 2 configuration, 4 something quarantined or failed, 5 credentials refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sync.config import CompanyConfig, Config, load_config
from sync.errors import ConfigError, ExitCode, StateError
from sync.fencing import LeaseKeeper, take_lease
from sync.jobs import lease_name
from sync.ledger import PollResult
from sync.logs import configure
from sync.runtime import Runtime, open_runtime
from sync.secrets import REDACTOR
from sync.terminal import make_console
from sync.transactions import poll_company

JOB = "transactions"  # the daemon's job name: both take the lease "<company>:transactions"
# Worst first: what the process exits with when companies end differently.
SEVERITY = (ExitCode.AUTH, ExitCode.CONFIG, ExitCode.FAILED, ExitCode.BLOCKED, ExitCode.PARTIAL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE [--company NAME] [--json]``."""
    parser.add_argument("--config", type=Path, required=True, help="the icsync TOML file")
    parser.add_argument("--company", help="poll only this configured company")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--sweep", action="store_true",
                        help="read every approved list in full, not from its tail cursor")


def run(args: argparse.Namespace) -> int:
    """Poll, print the summary, return the worst exit code."""
    config = load_config(args.config)
    service = config.settings.service
    configure(service.log_format, service.log_level, stream=sys.stderr)
    companies = ([config.settings.company(args.company)] if args.company
                 else posting_companies(config))
    results = asyncio.run(poll_all(config, companies, sweep=args.sweep))
    code = worst(r.exit_code for r in results)
    if args.json:
        doc = {"companies": [r.to_dict() for r in results], "exit_code": int(code)}
        print(REDACTOR(json.dumps(doc, indent=2, default=str)))
    else:
        render(results, make_console(highlight=False))
    return int(code)


def posting_companies(config: Config) -> list[CompanyConfig]:
    """The configured companies that post transactions (a sink and at least one type)."""
    companies = [c for c in config.settings.companies if c.sink and c.transaction_types]
    if not companies:
        raise ConfigError("no company posts transactions: give one a sink = \"NAME\" (with a "
                          "[sinks.NAME] table) and transaction_types", key="companies")
    return companies


def worst(codes: Iterable[ExitCode]) -> ExitCode:
    """The most severe of ``codes`` (OK when there are none)."""
    found = set(codes)
    return next((code for code in SEVERITY if code in found), ExitCode.OK)


async def poll_all(config: Config, companies: Sequence[CompanyConfig], *,
                   sweep: bool = False) -> list[PollResult]:
    """One pass per company, one after the other, each under its lease."""
    async with open_runtime(config) as rt:
        return [await poll_leased(rt, company, sweep=sweep) for company in companies]


async def poll_leased(rt: Runtime, company: CompanyConfig, *, sweep: bool = False
                      ) -> PollResult:
    """Poll ``company`` while holding its transactions lease: taken (waiting at most one lease
    time for a live holder to finish or a dead one's lease to expire), renewed every third of
    the lease time, released after; losing it cancels the pass with LeaseLost."""
    ttl = rt.config.settings.state.lease_seconds
    try:
        fence = await take_lease(rt.store, lease_name(company.name, JOB), rt.holder, ttl,
                                 doing="polling this company")
        keeper = LeaseKeeper(rt.store, fence, ttl)
        try:
            return await keeper.run(poll_company(rt, company, fence=fence, sweep=sweep))
        finally:
            await keeper.release()
    except StateError as exc:
        result = PollResult(company.name)
        result.fail("failed", ExitCode.FAILED, str(exc))
        return result


def render(results: Sequence[PollResult], console: Console) -> None:
    """The summary table (it fits 80 columns), then each company's problems."""
    seconds = sum(r.seconds for r in results)
    table = Table(title="icsync poll", caption=f"{seconds:.1f} s", box=box.SIMPLE_HEAD,
                  padding=0, pad_edge=False)
    for column in ("company", "outcome", "seen", "posted", "new", "written back",
                   "quarantined", "failed", "skipped"):
        words = max(len(word) for word in column.split())
        table.add_column(column, min_width=words,
                         justify="left" if column in ("company", "outcome") else "right")
    for r in results:
        table.add_row(r.company, r.outcome, *(str(n) for n in (
            r.seen, r.posted, r.created, r.written_back, r.quarantined, r.failed, r.skipped)))
    console.print(table)
    for r in results:
        for line in ([r.error] if r.error else []) + r.problems:
            console.print(Text.assemble((r.company, "bold"), ": ", REDACTOR(line)))
