"""List calls of a poll pass over a long approved history: full read (before) vs tail cursor.

Workload: a sandbox on loopback (in this process) holding ``--history`` approved invoices
(default 10,000) that were posted long ago (iCompleat shows each one's journal number and the
ledger has each one ``written_back``), plus ``--new`` invoices approved since (default 20). The
company polls all three types (ORD, INV, CRD); ORD and CRD have no documents. The ERP is the
in-memory sink; the state DB is SQLite; the request budget is off.

Measured (calls counted at the sandbox, by route):
- before: today's behaviour on main, a pass that lists every approved list in full from page 1
  (``poll_company(sweep=True)`` runs exactly that code path: pages until a short one);
- after: a pass from the tail cursors a previous pass left;
- nightly sweep: the full read over the history alone (the pass that sets the cursors).
The issue's target for "after": at most 2 list calls per configured type plus 2 calls per new
transaction (its detail and its journal write-back).

Run: ``uv run python benchmarks/poll_history.py [--history 10000] [--new 20] [--no-save]``.
Results: benchmarks/results/poll_history.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import machine  # benchmarks/machine.py: this script's folder is on the path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from connectors.icompleat.sandbox import SandboxServer  # noqa: E402
from sync.foundation.config import Config, parse_settings  # noqa: E402
from sync.foundation.logs import configure  # noqa: E402
from sync.runtime.context import open_runtime  # noqa: E402
from sync.state.models import LedgerEntry  # noqa: E402
from sync.state.store import StateStore  # noqa: E402
from sync.transactions.poll import poll_company  # noqa: E402

TENANT = "7d1c2b3a-0000-4000-8000-00000000be11"
COMPANY = "7d1c2b3a-0000-4000-8000-00000000be12"
KEY = "bench-key-9a0b1c2d"
RESULTS = ROOT / "benchmarks" / "results"
PAGE = 20


def invoice(n: int) -> dict[str, Any]:
    """A small invoice numbered ``n``."""
    amount = {"Base": {"Display": "£10.00", "Value": 10}, "Local": {"Value": 10}}
    return {"Type": "INV", "Title": f"Invoice {n}", "References": {"Identifier": f"INV-{n}"},
            "Net": amount, "Vat": amount, "Gross": amount,
            "Lines": [{"Code": "4000", "Description": "Paper", "Quantity": 1,
                       "UnitCost": amount, "Net": amount, "Vat": amount, "Gross": amount}]}


def config_for(work: Path, url: str) -> Config:
    """The configuration: one company polling ORD, INV and CRD into the memory sink."""
    return Config(parse_settings({
        "state": {"url": f"sqlite:///{work / 'state.db'}", "lease_seconds": 30},
        "icompleat": {"base_url": url, "tenant_id": TENANT, "api_key": KEY,
                      "requests_per_minute": 0, "max_concurrency": 4},
        "sinks": {"erp": {"type": "memory"}},
        "service": {"log_level": "warning"},
        "companies": [{"name": "bench", "company_id": COMPANY, "sink": "erp",
                       "transaction_types": ["ORD", "INV", "CRD"]}],
    }))


def seed_history(server: SandboxServer, config: Config, count: int) -> None:
    """``count`` approved invoices posted long ago: journal shown in iCompleat and ledger."""
    now = datetime.now(UTC)
    rows = []
    for n in range(count):
        tx = server.state.create_transaction(TENANT, COMPANY, invoice(n))
        server.state.approve(TENANT, tx["Id"])
        journal = f"H{n:07d}"
        server.state.edit_transaction(TENANT, tx["Id"], {"JournalNumber": journal})
        rows.append({"company_id": COMPANY, "transaction_id": tx["Id"], "tx_type": "INV",
                     "status": "written_back", "journal_number": journal, "attempts": 1,
                     "created_at": now, "updated_at": now, "journal_channel": "api"})
    with StateStore.open(config.settings.state.url) as store, \
            store._db.write("seeding the benchmark ledger") as conn:
        conn.execute(insert(LedgerEntry), rows)


def approve_new(server: SandboxServer, count: int, start: int) -> None:
    """``count`` invoices approved since the last pass."""
    for n in range(start, start + count):
        tx = server.state.create_transaction(TENANT, COMPANY, invoice(n))
        server.state.approve(TENANT, tx["Id"])


async def one_pass(server: SandboxServer, config: Config, *, sweep: bool) -> dict[str, Any]:
    """One poll pass; its calls by route, list calls by type, and time."""
    server.state.log.clear()
    started = time.perf_counter()
    async with open_runtime(config) as rt:
        result = await poll_company(rt, config.settings.companies[0], sweep=sweep)
    seconds = time.perf_counter() - started
    assert result.failed == 0, result.to_dict()
    entries = server.state.log.entries()
    by_route = Counter(e.route for e in entries)
    by_type = Counter(e.path.rstrip("/").split("/")[-1] for e in entries
                      if e.route == "transactions.list")
    return {"list_calls": by_route["transactions.list"], "list_calls_by_type": dict(by_type),
            "calls_by_route": dict(by_route), "calls": sum(by_route.values()),
            "posted": result.created, "seconds": round(seconds, 3)}


def scenario(history: int, new: int, *, tail: bool) -> dict[str, Any]:
    """A fresh world; the pass over history + new, from cursors (``tail``) or in full."""
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(
            tenant_id=TENANT, company_ids=[COMPANY], api_key=KEY) as server:
        config = config_for(Path(tmp), server.url)
        seed_history(server, config, history)
        out: dict[str, Any] = {}
        if tail:
            out["nightly_sweep"] = asyncio.run(one_pass(server, config, sweep=False))
        approve_new(server, new, history)
        out["pass"] = asyncio.run(one_pass(server, config, sweep=not tail))
        return out


def markdown(doc: dict[str, Any]) -> str:
    """The figures as a markdown table."""
    before, after, sweep = doc["before"], doc["after"], doc["nightly_sweep"]
    target = doc["target_calls"]
    lines = [f"# Poll pass over {doc['history']:,} posted + {doc['new']} new approved "
             "transactions", "",
             "| pass | list calls | all calls | posted | seconds |",
             "|---|---|---|---|---|"]
    for name, row in (("before: full read (main)", before), ("after: tail cursor", after),
                      ("nightly sweep (history only)", sweep)):
        lines.append(f"| {name} | {row['list_calls']} | {row['calls']} | {row['posted']} | "
                     f"{row['seconds']} |")
    lines += ["", "List calls by type (ORD, INV, CRD): before "
                  f"{before['list_calls_by_type']}, after {after['list_calls_by_type']}, "
                  f"sweep {sweep['list_calls_by_type']}. Seconds are wall time on a shared "
                  "machine with no API latency: the call counts are the figure.",
              "", f"Target for the tail pass: at most {target} calls (2 list calls per type, "
                  f"2 per new transaction); measured {after['calls']}.",
              f"Computed before from the paging: {doc['computed_before_list_calls']} list calls.",
              "", f"Machine: {doc['machine']['cpu']}, {doc['machine']['cores']} cores, "
                  f"{doc['machine']['memory_mb']} MB, Python {doc['machine']['python']}; "
                  f"measured {doc['measured_at']}.", ""]
    return "\n".join(lines)


def main() -> None:
    """Run both scenarios and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--new", type=int, default=20)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    configure("console", "warning", stream=sys.stderr)
    before = scenario(args.history, args.new, tail=False)["pass"]
    after_run = scenario(args.history, args.new, tail=True)
    types = 3
    doc = {"history": args.history, "new": args.new, "types": types, "page_size": PAGE,
           "before": before, "after": after_run["pass"],
           "nightly_sweep": after_run["nightly_sweep"],
           # A full read: every page of INV until the first short one, one empty page each
           # for ORD and CRD.
           "computed_before_list_calls": (args.history + args.new) // PAGE + 1 + (types - 1),
           "target_calls": 2 * types + 2 * args.new,
           "machine": machine(), "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    assert doc["after"]["calls"] <= doc["target_calls"], doc["after"]
    print(json.dumps(doc, indent=2))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "poll_history.json").write_text(json.dumps(doc, indent=2) + "\n")
        (RESULTS / "poll_history.md").write_text(markdown(doc))


if __name__ == "__main__":
    main()
