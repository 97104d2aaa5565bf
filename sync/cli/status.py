"""``icsync status --config FILE [--json]``: what the daemon did and what waits for an operator.

Shows, from the state database only (no call to iCompleat or the ERP): the last run of each
company and job with its outcome, counts and error; open quarantined records per company and
kind; the transaction ledger's backlog per status (quarantined transactions included); refreshes
left half-way; every lease with its holder and whether it is live; the capabilities learned
from iCompleat (calls answered 404/405, when, and the fallback in use); and the poll cursors.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sync.console.terminal import cell, json_document, make_console
from sync.foundation.config import Config, load_config
from sync.foundation.outcomes import counts_line
from sync.runtime.capabilities import fallback_of
from sync.runtime.context import open_reader
from sync.state.peek import StateReader
from sync.state.rows import RunRow

_BACKLOG = ("seen", "posting", "posted", "quarantined")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("--config", type=Path, required=True, help="the TOML configuration file")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    """Print the status; exit 0 (the state is information, not a verdict)."""
    config = load_config(args.config)
    with open_reader(config) as store:
        doc = collect(store, config)
    if args.json:
        print(json_document(doc))
    else:
        render(doc, make_console(highlight=False))
    return 0


def collect(store: StateReader, config: Config) -> dict[str, Any]:
    """The whole status as plain data."""
    names = {c.company_id: c.name for c in config.settings.companies}
    backlog: Counter[tuple[str, str]] = Counter(
        (names.get(r.company_id, r.company_id), r.status)
        for r in store.ledger_rows(status=list(_BACKLOG)))
    quarantine = Counter((r.company, r.kind) for r in store.quarantined(status="open"))
    return {
        "state": store.url_for_display,
        "runs": [_run(r) for r in latest_runs(store.last_runs(None, 500))],
        "quarantine": [{"company": c, "kind": k, "open": n}
                       for (c, k), n in sorted(quarantine.items())],
        "ledger": [{"company": c, "status": s, "count": n}
                   for (c, s), n in sorted(backlog.items())],
        "refreshes": [{"company": r.company, "kind": r.kind, "started_at": r.started_at,
                       "chunks_sent": r.chunks_sent, "total_chunks": r.total_chunks}
                      for r in store.open_refreshes()],
        "leases": [{"name": lease.name, "holder": lease.holder, "token": lease.token,
                    "expires_at": lease.expires_at, "live": lease.live}
                   for lease in store.leases()],
        "capabilities": [{"operation": c.operation, "supported": c.supported,
                          "status": c.status, "checked_at": c.checked_at,
                          "fallback": None if c.supported else fallback_of(c.operation)}
                         for c in store.capabilities(config.settings.icompleat.tenant_id)],
        "poll_cursors": [{"company": names.get(c.company_id, c.company_id), "type": c.tx_type,
                          "page": c.page, "ids_on_page": len(c.ids), "swept_at": c.swept_at}
                         for c in store.poll_cursors()],
    }


def latest_runs(runs: Iterable[RunRow]) -> list[RunRow]:
    """The newest run of each (company, job, kind), in company and job order."""
    newest: dict[tuple[str, str, str | None], RunRow] = {}
    for run in runs:
        key = (run.company, run.job, run.kind)
        if key not in newest or run.id > newest[key].id:
            newest[key] = run
    return sorted(newest.values(), key=lambda r: (r.company, r.job, r.kind or ""))


def _run(row: RunRow) -> dict[str, Any]:
    seconds = ((row.finished_at - row.started_at).total_seconds()
               if row.finished_at is not None else None)
    counts = row.counts if isinstance(row.counts, dict) else {}
    return {"id": row.id, "company": row.company, "job": row.job, "kind": row.kind,
            "started_at": row.started_at, "finished_at": row.finished_at,
            "seconds": None if seconds is None else round(seconds, 3),
            "outcome": row.outcome or "running or interrupted",
            "holder": counts.get("holder"), "missed": counts.get("missed", 0),
            "counts": counts_line(counts), "error": row.error}



def _table(title: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell(v)) for v in row))
    return table


def render(doc: dict[str, Any], console: Console) -> None:
    """The status as rich tables."""
    console.print(f"state database: {doc['state']}")
    console.print(_table("Last runs (times in UTC)",
                         ("company", "job", "outcome", "started", "seconds", "missed", "counts",
                          "holder", "error"),
                         ((r["company"], r["job"] + (f"/{r['kind']}" if r["kind"] else ""),
                           r["outcome"], r["started_at"], r["seconds"], r["missed"],
                           r["counts"], r["holder"], r["error"]) for r in doc["runs"])))
    console.print(_table("Quarantined records (icsync errors list)", ("company", "kind", "open"),
                         ((q["company"], q["kind"], q["open"]) for q in doc["quarantine"])))
    console.print(_table("Transaction ledger backlog", ("company", "status", "count"),
                         ((b["company"], b["status"], b["count"]) for b in doc["ledger"])))
    if doc["refreshes"]:
        console.print(_table("Refreshes left half-way (finished by the next run)",
                             ("company", "kind", "started", "chunks"),
                             ((r["company"], r["kind"], r["started_at"],
                               f"{r['chunks_sent']}/{r['total_chunks']}")
                              for r in doc["refreshes"])))
    if doc["capabilities"]:
        console.print(_table("iCompleat capabilities (learned from 404/405)",
                             ("operation", "supported", "status", "checked", "fallback"),
                             ((c["operation"], "yes" if c["supported"] else "NO", c["status"],
                               c["checked_at"], c["fallback"]) for c in doc["capabilities"])))
    if doc["poll_cursors"]:
        console.print(_table("Poll cursors (tail of each approved list)",
                             ("company", "type", "page", "ids", "last sweep"),
                             ((c["company"], c["type"], c["page"], c["ids_on_page"],
                               c["swept_at"]) for c in doc["poll_cursors"])))
    console.print(_table("Leases", ("name", "holder", "token", "expires", "live"),
                         ((lease["name"], lease["holder"], lease["token"],
                           lease["expires_at"], "yes" if lease["live"] else "no")
                          for lease in doc["leases"])))
