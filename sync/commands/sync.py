"""``icsync sync``: plan (``--dry-run``) or apply the reference sync once, for one or all companies.

Without ``--dry-run`` each company runs under its ``<company>:reference`` lease (the same lease
the daemon's reference job takes, so a manual run and the daemon never overlap), recorded in the
runs table, with a progress bar on a terminal and a summary table at the end. ``--full`` reads
every remote list back first (drift repair, or rebuilding a lost state database). ``--json``
prints one JSON document instead. The exit code is the worst across companies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync.errors import ConfigError, ExitCode, IcsyncError
from sync.terminal import make_console

if TYPE_CHECKING:  # the engine's imports (pandas, SQLAlchemy) load only when a command runs
    import httpx
    from rich.console import Console

    from sync.config import CompanyConfig, Config
    from sync.engine import CompanyResult
    from sync.progress import LiveProgress
    from sync.runtime import Runtime

DEFAULT_CONFIG = "icsync.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``icsync sync``."""
    parser.add_argument("--config", type=Path,
                        default=Path(os.environ.get("ICSYNC_CONFIG", DEFAULT_CONFIG)),
                        help="configuration file (default $ICSYNC_CONFIG or ./icsync.toml)")
    parser.add_argument("--company", help="only this company (default: every company)")
    parser.add_argument("--kind", action="append", dest="kinds", metavar="KIND",
                        help="only this kind (repeatable): currencies, tax_codes, account_codes, "
                             "delivery_sites, custom_fields, suppliers")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan and write nothing")
    parser.add_argument("--full", action="store_true",
                        help="read every iCompleat list back first (drift, lost state)")
    parser.add_argument("--allow-deletes", action="store_true",
                        help="let deletes and refreshes through the safety guard")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    """Load the configuration, run, print, and return the worst exit code."""

    from sync.config import load_config
    from sync.logs import configure

    config = load_config(args.config)
    service = config.settings.service
    configure(service.log_format, "warning" if service.log_level == "info" else
              service.log_level, stream=sys.stderr)
    results = asyncio.run(execute(config, args))
    console = make_console(soft_wrap=False)
    if args.json:
        print(json.dumps(document(results), indent=2, default=str, ensure_ascii=False))
    else:
        report(results, console, dry_run=args.dry_run)
    return int(exit_code(results))


def exit_code(results: Sequence[CompanyResult]) -> ExitCode:
    """The worst exit code across companies."""
    from sync.engine import EXIT_CODES, worst

    return EXIT_CODES[worst([r.outcome for r in results])]


def document(results: Sequence[CompanyResult]) -> dict[str, Any]:
    """The ``--json`` document."""
    return {"exit_code": int(exit_code(results)), "companies": [r.to_dict() for r in results]}


def companies_of(config: Config, name: str | None) -> list[CompanyConfig]:
    """The selected companies; ConfigError when there are none."""
    if name:
        return [config.settings.company(name)]
    if not config.settings.companies:
        raise ConfigError("no [[companies]] in the configuration", key="companies")
    return list(config.settings.companies)


async def execute(config: Config, args: argparse.Namespace, *,
                  transport: httpx.AsyncBaseTransport | None = None) -> list[CompanyResult]:
    """Run every selected company in turn; stop after a rejected credential."""
    from sync.engine import sync_company
    from sync.fencing import LeaseGuardTransport
    from sync.runtime import open_runtime

    companies = companies_of(config, args.company)
    guard = LeaseGuardTransport(transport) if transport is not None else LeaseGuardTransport()
    results: list[CompanyResult] = []
    async with open_runtime(config, transport=guard) as rt:
        for company in companies:
            if args.dry_run:
                result = await sync_company(rt, company, kinds=args.kinds, dry_run=True,
                                            full=args.full, allow_deletes=args.allow_deletes)
            else:
                result = await run_leased(rt, company, args)
            results.append(result)
            if result.outcome == "auth":
                break
    return results


async def run_leased(rt: Runtime, company: CompanyConfig,
                     args: argparse.Namespace) -> CompanyResult:
    """Apply one company under its reference lease, recording the run."""
    from sync.engine import CompanyResult, sync_company
    from sync.fencing import LeaseKeeper, take_lease
    from sync.jobs import counts_by_kind, first_error, lease_name

    ttl = rt.config.settings.state.lease_seconds
    fence = await take_lease(rt.store, lease_name(company.name, "reference"), rt.holder, ttl,
                             doing="syncing this company")
    keeper = LeaseKeeper(rt.store, fence, ttl)
    run_id = await asyncio.to_thread(rt.store.start_run, company.name, "reference", None,
                                     fence=fence)
    result = CompanyResult(company.name, outcome="failed", exit_code=ExitCode.FAILED)
    try:
        with progress_bar(company.name, args) as bar:
            result = await keeper.run(sync_company(
                rt, company, kinds=args.kinds, full=args.full, allow_deletes=args.allow_deletes,
                fence=fence, on_plan=bar.plan if bar else None,
                on_progress=bar.advance if bar else None))
    except IcsyncError as exc:
        result.error = str(exc)
        raise
    finally:
        # The same shape as the daemon's run records, so `icsync status` shows both alike.
        data = result.to_dict()
        counts = {"holder": rt.holder, "manual": True, "kinds": counts_by_kind(data)}
        try:
            await asyncio.to_thread(rt.store.finish_run, run_id, result.outcome, counts,
                                    first_error(data), fence=fence)
        except IcsyncError as exc:  # the lease is gone: the error above already says so
            log_warning("could not record the run", error=str(exc))
        finally:
            await keeper.release()
    return result


@contextmanager
def progress_bar(company: str, args: argparse.Namespace) -> Iterator[LiveProgress | None]:
    """A live progress bar on the terminal when standard output is one (and not --json)."""
    if args.json or not sys.stdout.isatty():
        yield None
        return
    from sync.progress import LiveProgress

    with LiveProgress(company, make_console()) as bar:
        yield bar


def log_warning(event: str, **fields: Any) -> None:
    """A warning in the command's log (stderr)."""
    from sync.logs import get_logger

    get_logger("icsync.sync").warning(event, **fields)


def report(results: Sequence[CompanyResult], console: Console, *, dry_run: bool,
           limit: int = 50) -> None:
    """The human-readable output: plans for a dry run, summaries otherwise."""
    from sync.progress import print_summary, skipped_notes
    from sync.render import render_plan

    if not dry_run:
        print_summary(results, console)
        return

    for result in results:
        console.rule(f"{result.company}: plan ({result.outcome})")
        unread = {k.kind: k.error for k in result.kinds if k.error}
        planned = {kp.kind for kp in result.plan.kinds} if result.plan is not None else set()
        if result.plan is not None:
            render_plan(result.plan, console, limit=limit, unread=unread)
        for kind in result.kinds:
            if kind.error and (result.plan is None or kind.kind in planned):
                console.print(f"{kind.kind}: {kind.error}", markup=False, highlight=False)
        for line in skipped_notes(result):
            console.print(line, markup=False, highlight=False)
        for drift in result.drift:
            for line in drift.lines():
                console.print(f"{drift.kind}: {line}", markup=False, highlight=False)
        if result.error:
            console.print(f"error: {result.error}", markup=False, highlight=False)
