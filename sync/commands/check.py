"""``icsync check --config FILE``: is everything in place to run? Each step reported ok or FAIL.

Steps, in order (a failed step does not hide the later ones, except that nothing runs without a
valid configuration): the configuration; the state database (opened and migrated); every
source's kinds for every company that uses it (read, rows counted, nothing printed from them);
every sink (a look-up that writes nothing); iCompleat's tenant and companies endpoints, and that
each configured company id is one of the tenant's. Nothing is written anywhere but the state
database's schema. The exit code is the worst step's: 2 configuration, 5 credentials rejected,
1 anything else that failed, 0 all ok.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from connectors.base import CompanyRef
from connectors.icompleat.client import IcompleatClient
from sync.config import Config, load_config
from sync.errors import ConfigError, ExitCode, IcsyncError, exit_code_for
from sync.runtime import Runtime, make_holder, open_store
from sync.schedules import validate_schedules
from sync.secrets import REDACTOR
from sync.terminal import make_console

_PROBE_ID = "icsync-check-00000000"  # an id no ERP holds: sinks are looked up, never written
# Which failure the exit code reports when several steps fail: credentials, then configuration.
_RANK = {ExitCode.OK: 0, ExitCode.FAILED: 1, ExitCode.CONFIG: 2, ExitCode.AUTH: 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("--config", type=Path, required=True, help="the TOML configuration file")


@dataclass
class Report:
    """The steps so far and the worst exit code."""

    console: Console
    code: ExitCode = ExitCode.OK
    failed: list[str] = field(default_factory=list)

    def ok(self, step: str, detail: str = "") -> None:
        """Report a step that worked."""
        self.console.print(f"[green]ok  [/green] {step}" + (f": {detail}" if detail else ""))

    def fail(self, step: str, exc: BaseException) -> None:
        """Report a failed step, keeping the worst exit code."""
        code = exit_code_for(exc)
        text = REDACTOR(str(exc)) if isinstance(exc, IcsyncError) else REDACTOR(repr(exc))
        self.console.print(f"[red]FAIL[/red] {step}: {text}")
        self.failed.append(step)
        self.code = max(self.code, code, key=lambda c: _RANK.get(c, 1))

    async def step(self, name: str, action: Callable[[], Awaitable[str]]) -> bool:
        """Run one step; True when it worked."""
        try:
            detail = await action()
        except Exception as exc:  # every failure is reported as a step, never a traceback
            self.fail(name, exc)
            return False
        self.ok(name, detail)
        return True


def run(args: argparse.Namespace) -> int:
    """Check every step; the worst step's exit code."""
    report = Report(make_console(highlight=False))
    try:
        config = load_config(args.config)
    except IcsyncError as exc:
        report.fail(f"configuration {args.config}", exc)
        return int(report.code)
    report.ok(f"configuration {args.config}",
              f"{len(config.settings.companies)} companies, "
              f"{len(config.settings.sources)} sources, {len(config.settings.sinks)} sinks")
    try:
        count = validate_schedules(config.settings.companies)
        report.ok("schedules", f"{count} schedules, each fires")
    except ConfigError as exc:
        report.fail("schedules", exc)
    asyncio.run(check_all(config, report))
    return int(report.code)


async def check_all(config: Config, report: Report) -> None:
    """Every step after the configuration."""
    store = None
    try:
        store = await asyncio.to_thread(open_store, config)
        report.ok("state database", f"{store.url_for_display} (schema {store.schema_revision()})")
    except Exception as exc:  # reported like every other step
        report.fail("state database", exc)
    client = None
    try:
        client = IcompleatClient.from_config(config)
    except IcsyncError as exc:
        report.fail("iCompleat client", exc)
    try:
        if store is not None and client is not None:
            rt = Runtime(config=config, store=store, client=client, holder=make_holder())
            await check_connectors(rt, report)
        if client is not None:
            await check_icompleat(config, client, report)
    finally:
        if client is not None:
            await client.aclose()
        if store is not None:
            await asyncio.to_thread(store.close)


async def check_connectors(rt: Runtime, report: Report) -> None:
    """Read each source's kinds for each company using it; look each sink up."""
    try:
        for company in rt.config.settings.companies:
            ref = CompanyRef(company.name, company.company_id)
            if company.source is not None:
                for kind in company.kinds:
                    await report.step(f"source {company.source}: {kind} for {company.name}",
                                      _read(rt, company.source, kind, ref))
        for name in rt.config.settings.sinks:
            await report.step(f"sink {name}", _look_up(rt, name))
    finally:
        await asyncio.to_thread(rt.close_connectors)


def _read(rt: Runtime, source: str, kind: str, ref: CompanyRef) -> Callable[[], Awaitable[str]]:
    async def read() -> str:
        got = await asyncio.to_thread(lambda: rt.source(source).read(kind, ref))
        rows = len(got.frame)
        columns = ", ".join(map(str, got.frame.columns[:8]))
        partial = "" if got.complete else " (the source says the read was PARTIAL)"
        return f"{rows} rows; columns {columns}{partial}"
    return read


def _look_up(rt: Runtime, name: str) -> Callable[[], Awaitable[str]]:
    async def look_up() -> str:
        found = await asyncio.to_thread(lambda: rt.sink(name).find(_PROBE_ID))
        return "reachable" + (" (the probe id exists?)" if found is not None else "")
    return look_up


async def check_icompleat(config: Config, client: IcompleatClient, report: Report) -> None:
    """The tenant and companies endpoints, and each configured company id among them."""
    base = config.settings.icompleat.base_url

    async def tenant() -> str:
        info = await client.tenant()
        name = info.get("Name") or info.get("Id") or config.settings.icompleat.tenant_id
        return f"{base}, tenant {name}"

    if not await report.step("iCompleat tenant", tenant):
        return
    listed: dict[str, str] = {}

    async def companies() -> str:
        for item in await client.companies():
            listed[str(item.get("Id", ""))] = str(item.get("Name", ""))
        return f"{len(listed)} companies"

    if not await report.step("iCompleat companies", companies):
        return
    for i, company in enumerate(config.settings.companies):
        if company.company_id in listed:
            report.ok(f"company {company.name}", f"{company.company_id} = "
                                                 f"{listed[company.company_id]!r} in iCompleat")
        else:
            report.fail(f"company {company.name}", ConfigError(
                f"{company.company_id} is not one of the tenant's companies; copy the id from "
                f"iCompleat (known: {sorted(listed)})", key=f"companies.{i}.company_id"))
