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
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync.console.terminal import json_document, make_console
from sync.foundation.errors import ConfigError, ExitCode

if TYPE_CHECKING:  # the engine's imports (pandas, SQLAlchemy) load only when a command runs
    import httpx

    from sync.console.progress import LiveProgress
    from sync.foundation.config import CompanyConfig, Config
    from sync.reference.engine import CompanyResult
    from sync.state.rows import LeaseLook

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

    start_reader(args.config)  # before the configuration's own imports and checks
    from connectors.icompleat.tls import prepare

    prepare()  # the certificate authorities load on the other core meanwhile
    from sync.foundation.config import load_config
    from sync.foundation.logs import configure

    config = load_config(args.config)
    service = config.settings.service
    configure(service.log_format, "warning" if service.log_level == "info" else
              service.log_level, stream=sys.stderr)
    ahead, look = read_ahead(config, args)
    try:
        results = asyncio.run(execute(config, args, ahead=look))
    finally:
        if ahead:
            from connectors.sqlite_child import discard_ahead

            discard_ahead()
    if args.json:
        print(json_document(document(results)))
    else:
        from sync.console.progress import print_results

        print_results(results, make_console(soft_wrap=False), dry_run=args.dry_run)
    for result in results:  # a run that could not start or failed: one clear line on stderr
        if result.error and result.outcome in ("failed", "auth", "lease_lost", "error"):
            print(f"icsync sync: {result.company}: {result.error}", file=sys.stderr)
    return int(exit_code(results))


def start_reader(path: Path) -> None:
    """Start the SQLite reader process (:func:`connectors.sqlite_child.prewarm`) at once when
    the configuration file names a SQLite source read as Arrow, so it is ready when the rows
    are read ahead (its start-up, 0.2 s, is then no longer on the way to the first row). A
    quick look at the file's text only: whatever it misses, the reader starts at the first
    read as before; a reader started for nothing goes at exit. Only a regular file is looked
    at: a pipe (``--config <(...)``) can be read once, by the configuration's own loading."""
    import tomllib

    try:
        if not path.is_file():
            return
        sources = tomllib.loads(path.read_text(encoding="utf-8")).get("sources")
    except (OSError, ValueError, UnicodeError):
        return
    if not isinstance(sources, dict):
        return
    from sync.foundation.files import sqlite_url_file

    if any(isinstance(s, dict) and sqlite_url_file(str(s.get("url", ""))) is not None
           and s.get("arrow", True) is not False for s in sources.values()):
        from connectors.sqlite_child import prewarm

        prewarm()


def exit_code(results: Sequence[CompanyResult]) -> ExitCode:
    """The worst exit code across companies."""
    from sync.foundation.outcomes import worst_exit

    return worst_exit(r.exit_code for r in results)


def document(results: Sequence[CompanyResult]) -> dict[str, Any]:
    """The ``--json`` document."""
    return {"exit_code": int(exit_code(results)), "companies": [r.to_dict() for r in results]}


def read_ahead(config: Config, args: argparse.Namespace) -> tuple[list[str], LeaseLook | None]:
    """Start reading the first company's kinds from its source now, while this process is
    still importing and opening the state database (see :mod:`connectors.sql_ahead`): the
    kinds started, and for a run that applies, the company's lease as seen before they
    started. A selection that cannot run starts nothing (the run reports it).

    A run that applies uses the rows only if nobody takes the company's lease between this
    look and its own taking of it (see :mod:`sync.reference.run`); it starts nothing while
    another instance holds the lease (it would wait for it, and then read again anyway)."""
    from connectors.factory import read_ahead as source_read_ahead
    from sync.foundation.config import selected_kinds

    try:
        company = companies_of(config, args.company)[0]
        kinds = selected_kinds(company, args.kinds)
    except ConfigError:
        return [], None
    if args.dry_run:
        return source_read_ahead(config.settings, company, kinds), None
    look: LeaseLook | None = None

    def lease_free() -> bool:
        """Look at the lease (only once something can be read ahead: a state database that
        does not answer is then waited for twice, not on every run)."""
        from sync.runtime.context import look_lease
        from sync.state.rows import REFERENCE_JOB, lease_name

        nonlocal look
        look = look_lease(config, lease_name(company.name, REFERENCE_JOB))
        return look is not None

    started = source_read_ahead(config.settings, company, kinds, gate=lease_free)
    return started, look if started else None


def companies_of(config: Config, name: str | None) -> list[CompanyConfig]:
    """The selected companies; ConfigError when there are none."""
    if name:
        return [config.settings.company(name)]
    if not config.settings.companies:
        raise ConfigError("no [[companies]] in the configuration", key="companies")
    return list(config.settings.companies)


async def execute(config: Config, args: argparse.Namespace, *,
                  transport: httpx.AsyncBaseTransport | None = None,
                  ahead: LeaseLook | None = None) -> list[CompanyResult]:
    """Run every selected company in turn (a progress bar on a terminal); stop after a
    rejected credential. ``ahead``: see :func:`read_ahead`."""
    from sync.reference.run import sync_companies

    def bar(company: str) -> LiveProgress:
        from sync.console.progress import LiveProgress

        return LiveProgress(company, make_console())

    # A live bar when standard output is a terminal (and not --json).
    live = sys.stdout.isatty() and not args.json
    return await sync_companies(config, companies_of(config, args.company), kinds=args.kinds,
                                dry_run=args.dry_run, full=args.full,
                                allow_deletes=args.allow_deletes,
                                progress=bar if live else None, transport=transport,
                                ahead=ahead)
