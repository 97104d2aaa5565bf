"""The steps of ``icsync check`` (see :mod:`sync.cli.check`), imported once the command runs,
so ``icsync check --help`` starts without pandas or the HTTP client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from connectors.base import CompanyRef
from connectors.icompleat.client import IcompleatClient
from sync.cli.live import Probe, check_test_company, run_live
from sync.console.terminal import make_console
from sync.daemon.schedules import validate_schedules
from sync.foundation.config import Config, load_config
from sync.foundation.entities import get_kind
from sync.foundation.errors import ConfigError, ExitCode, IcsyncError, exit_code_for
from sync.foundation.secrets import REDACTOR
from sync.reference.rules.mapping import Shaped, shape, unsent_fields, unsent_note
from sync.reference.rules.normalise import KindMapping
from sync.runtime.capabilities import fallback_of
from sync.runtime.context import Runtime, make_holder, open_store
from sync.state.store import StateStore

_PROBE_ID = "icsync-check-00000000"  # an id no ERP holds: sinks are looked up, never written
# Which failure the exit code reports when several steps fail: credentials, then configuration.
_RANK = {ExitCode.OK: 0, ExitCode.FAILED: 1, ExitCode.CONFIG: 2, ExitCode.AUTH: 3}


@dataclass
class Report:
    """The steps so far and the worst exit code."""

    console: Console
    code: ExitCode = ExitCode.OK
    failed: list[str] = field(default_factory=list)

    def ok(self, step: str, detail: str = "") -> None:
        """Report a step that worked."""
        line = Text.assemble(("ok  ", "green"), f" {step}" + (f": {detail}" if detail else ""))
        self.console.print(line, soft_wrap=True)  # one line each: paths never broken

    def fail(self, step: str, exc: BaseException) -> None:
        """Report a failed step, keeping the worst exit code."""
        code = exit_code_for(exc)
        text = REDACTOR(str(exc)) if isinstance(exc, IcsyncError) else REDACTOR(repr(exc))
        self.console.print(Text.assemble(("FAIL", "red"), f" {step}: {text}"), soft_wrap=True)
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


def run_checks(args: argparse.Namespace) -> int:
    """Check every step; the worst step's exit code."""
    live, as_json = getattr(args, "live", False), getattr(args, "json", False)
    report = Report(make_console(file=sys.stderr if as_json and live else None,
                                 highlight=False))
    try:
        config = load_config(args.config)
        test = check_test_company(config, getattr(args, "test_company", None),
                                  getattr(args, "probe_writes", False))
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
    asyncio.run(check_all(config, report, live=live, test_company=test, as_json=as_json))
    return int(report.code)


async def check_all(config: Config, report: Report, *, live: bool = False,
                    test_company: str | None = None, as_json: bool = False) -> None:
    """Every step after the configuration (and the live probe when asked)."""
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
        if store is not None:
            show_capabilities(store, config, report)
        if live and client is not None:
            await check_live(config, store, report, test_company, as_json)
    finally:
        if client is not None:
            await client.aclose()
        if store is not None:
            await asyncio.to_thread(store.close)


async def check_connectors(rt: Runtime, report: Report) -> None:
    """Read each source's kinds for each company using it; look each sink up."""
    try:
        for company in rt.config.settings.companies:
            ref = CompanyRef.of(company)
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
        shaped = mapped(rt, source, kind, got.frame)
        rows = len(got.frame)
        columns = ", ".join(map(str, got.frame.columns[:8]))
        partial = "" if got.complete else " (the source says the read was PARTIAL)"
        skipped = "".join(f"; {n} {what}" for n, what in (
            (shaped.blank, "blank rows skipped"), (shaped.filtered, "rows left out by where"))
            if n)
        unsent = unsent_fields(get_kind(kind), shaped.frame)
        note = f"; note: {unsent_note(get_kind(kind), unsent)}" if unsent else ""
        return f"{rows} rows; columns {columns}{partial}{skipped}{note}"
    return read


def mapped(rt: Runtime, source: str, kind: str, frame: pd.DataFrame) -> Shaped:
    """The kind's mapping applied to a read: ConfigError naming the setting when a mapped
    column is missing or the where filter cannot be read."""
    spec = rt.config.settings.sources[source].kinds.get(kind)
    try:
        return shape(get_kind(kind), frame, KindMapping.from_config(spec).rules)
    except ConfigError as exc:
        text, key = str(exc), exc.key or ""
        text = text[len(key) + 2:] if key and text.startswith(f"{key}: ") else text
        raise ConfigError(text, key=f"sources.{source}.kinds.{kind}.{key}") from None


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
    listed: dict[str, str] = {}  # GUIDs compare ignoring case: keyed by the folded id

    async def companies() -> str:
        for item in await client.companies():
            listed[str(item.get("Id", "")).strip().casefold()] = str(item.get("Name", ""))
        return f"{len(listed)} companies"

    if not await report.step("iCompleat companies", companies):
        return
    for i, company in enumerate(config.settings.companies):
        folded = company.company_id.strip().casefold()
        if folded in listed:
            report.ok(f"company {company.name}", f"{company.company_id} = "
                                                 f"{listed[folded]!r} in iCompleat")
        else:
            report.fail(f"company {company.name}", ConfigError(
                f"{company.company_id} is not one of the tenant's companies; copy the id from "
                f"iCompleat (known: {sorted(listed)})", key=f"companies.{i}.company_id"))


def show_capabilities(store: StateStore, config: Config, report: Report) -> None:
    """The calls this tenant answered 404/405 (and their fallbacks), as learned so far."""
    rows = [r for r in store.capabilities(config.settings.icompleat.tenant_id)
            if not r.supported]
    for row in rows:
        report.console.print(f"[yellow]note[/yellow] iCompleat {row.operation}: unsupported "
                             f"(HTTP {row.status}, {row.checked_at:%Y-%m-%d %H:%M}Z); "
                             f"{fallback_of(row.operation)}")
    if not rows:
        report.ok("capabilities", "no call of this tenant has answered 404/405 so far")


async def check_live(config: Config, store: StateStore | None, report: Report,
                     test_company: str | None, as_json: bool) -> None:
    """Probe every route the configuration uses; a table (or JSON) of the verdicts."""
    try:
        probes = await run_live(config, store, probe_writes_in=test_company)
    except IcsyncError as exc:
        report.fail("live probe", exc)
        return
    # A read has no fallback: one that is missing fails the check like one that errs.
    failed = [p for p in probes if p.verdict in ("failed", "refused")
              or (p.verdict == "unsupported" and p.method == "GET")]
    if as_json:
        print(json.dumps({"routes": [p.to_dict() for p in probes],
                          "failed": len(failed)}, indent=2, default=str))
    else:
        report.console.print(live_table(probes))
    if failed:
        report.fail("live probe", IcsyncError(
            f"{len(failed)} route(s) failed: {', '.join(p.route for p in failed)}"))
    else:
        report.ok("live probe", f"{len(probes)} routes probed")


def live_table(probes: list[Probe]) -> Table:
    """The probes as a table: route, method, company, status, latency, verdict, basis."""
    table = Table(title="iCompleat routes (icsync check --live)", title_justify="left")
    for column in ("route", "method", "company", "status", "ms", "verdict", "basis", "detail"):
        table.add_column(column, overflow="fold")
    colours = {"ok": "green", "unsupported": "yellow", "skipped": "dim"}
    for p in probes:
        colour = colours.get(p.verdict, "red")
        table.add_row(p.route, p.method, p.company or "", "" if p.status is None else
                      str(p.status), "" if p.ms is None else f"{p.ms:g}",
                      f"[{colour}]{p.verdict}[/{colour}]", p.basis, REDACTOR(p.detail)[:160])
    return table
