"""``icsync errors list|retry|resolve --config FILE [--company N] [--kind K] [--all] [ID...]``.

What was set aside and why: records the sync could not send (rejected by validation or by
iCompleat) and transactions the ERP refused (or whose journal numbers disagree).

- ``list``: open and retry-pending records with their reason and message, and quarantined
  transactions with their attempts and last error (``--json`` for one document).
- ``retry ID...``: a record (numeric id) is sent again by the next run even though its source
  row did not change; a transaction (its iCompleat id) is due again at once with its attempt
  count reset.
- ``resolve ID...``: an operator dealt with it. A record is no longer listed (it is picked up
  again if its source row changes); a transaction is never retried automatically again (it stays
  in the ledger, marked resolved, so it is never posted twice).

``--all`` applies retry or resolve to everything listed under ``--company`` / ``--kind``
(``--kind transactions`` for transactions only). Exit 0; 2 for an unknown id.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from sync.console.terminal import cell, json_document, make_console
from sync.foundation.config import Config, load_config
from sync.foundation.errors import ConfigError
from sync.runtime.context import open_reader, open_store
from sync.state.peek import StateReader
from sync.state.rows import LedgerRow, QuarantineRow
from sync.transactions.rules import RESOLVED_PREFIX

if TYPE_CHECKING:
    from sync.state.store import StateStore

# The ids may also follow the options (``errors retry --config F 3 4``): see sync.cli's parsing.
TRAILING = "ids"
TRANSACTIONS = "transactions"
RESOLVED = RESOLVED_PREFIX  # the ledger's rules never retry a row whose error starts so


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("action", choices=("list", "retry", "resolve"))
    parser.add_argument("ids", nargs="*", metavar="ID",
                        help="record ids (numbers) or transaction ids to retry or resolve")
    parser.add_argument("--config", type=Path, required=True, help="the TOML configuration file")
    parser.add_argument("--company", help="only this company (its configured name)")
    parser.add_argument("--kind", help="only this kind ('transactions' for transactions)")
    parser.add_argument("--all", action="store_true", help="retry or resolve every listed item")
    parser.add_argument("--json", action="store_true", help="list as one JSON document")
    parser.add_argument("--limit", type=_count, default=DEFAULT_LIMIT, metavar="N",
                        help=f"rows per table when listing (default {DEFAULT_LIMIT}; 0: all; "
                             "--json always lists all)")


@dataclass(frozen=True)
class Listed:
    """The quarantined records and transactions matching the filters."""

    records: list[QuarantineRow]
    transactions: list[LedgerRow]


DEFAULT_LIMIT = 100


def _count(text: str) -> int:
    """A row limit: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of rows (0: all)")
    return value


def run(args: argparse.Namespace) -> int:
    """List, retry or resolve; exit 0 (2 for an unknown id or a bad filter)."""
    config = load_config(args.config)
    if args.company is not None:
        config.settings.company(args.company)
    if args.action == "list":
        with open_reader(config) as reader:
            listed = find(reader, config, args.company, args.kind)
        show(listed, config, args.json, args.limit)
        return 0
    with open_store(config) as store:
        return change(store, find(store, config, args.company, args.kind), args)


def find(store: StateReader, config: Config, company: str | None, kind: str | None) -> Listed:
    """Open and retry-pending records, and unresolved quarantined transactions."""
    records: list[QuarantineRow] = []
    if kind != TRANSACTIONS:
        for status in ("open", "retry"):
            records += store.quarantined(company, kind, status)
    transactions: list[LedgerRow] = []
    if kind in (None, TRANSACTIONS):
        wanted = {c.company_id for c in config.settings.companies
                  if company is None or c.name == company}
        transactions = [r for r in store.ledger_rows(None, ["quarantined"])
                        if r.company_id in wanted and not (r.last_error or "").startswith(RESOLVED)]
    return Listed(sorted(records, key=lambda r: r.id), transactions)


def change(store: StateStore, listed: Listed, args: argparse.Namespace) -> int:
    """Apply retry or resolve to the chosen ids (or ``--all``)."""
    if not args.ids and not args.all:
        raise ConfigError("name the ids to change (from `icsync errors list`) or pass --all",
                          key="ID")
    records, transactions = _chosen(listed, args.ids, args.all)
    status = "retry" if args.action == "retry" else "resolved"
    changed = store.set_quarantine_status([r.id for r in records], status) if records else 0
    now = datetime.now(UTC)
    for row in transactions:
        if args.action == "retry":
            fields: dict[str, Any] = {"next_attempt_at": now, "attempts": 0}
        else:
            note = f"{RESOLVED} on {now:%Y-%m-%d %H:%M} UTC; was: {row.last_error}"
            fields = {"next_attempt_at": None, "last_error": note}
        changed += store.ledger_transition(row.company_id, row.transaction_id,
                                           expect=["quarantined"], to="quarantined", **fields)
    verb = "set to be retried by the next run" if args.action == "retry" else "resolved"
    print(f"{changed} item(s) {verb}.")
    return 0


def _chosen(listed: Listed, ids: Sequence[str], everything: bool
            ) -> tuple[list[QuarantineRow], list[LedgerRow]]:
    if everything and not ids:
        return listed.records, listed.transactions
    by_id = {str(r.id): r for r in listed.records}
    by_tx = {r.transaction_id: r for r in listed.transactions}
    unknown = [i for i in ids if i not in by_id and i not in by_tx]
    if unknown:
        raise ConfigError(f"no quarantined record or transaction {unknown} under these filters; "
                          "see `icsync errors list`", key="ID")
    return [by_id[i] for i in ids if i in by_id], [by_tx[i] for i in ids if i in by_tx]


def show(listed: Listed, config: Config, as_json: bool, limit: int = DEFAULT_LIMIT) -> None:
    """Print the lists as tables (the first ``limit`` rows of each, 0: all) or JSON (all)."""
    names = {c.company_id: c.name for c in config.settings.companies}
    records = [{"id": r.id, "company": r.company, "kind": r.kind, "key": r.key,
                "reason": r.reason, "field": r.field, "message": r.message, "origin": r.origin,
                "status": r.status, "first_seen": r.first_seen, "last_seen": r.last_seen}
               for r in listed.records]
    transactions = [{"id": r.transaction_id, "company": names.get(r.company_id, r.company_id),
                     "type": r.tx_type, "attempts": r.attempts,
                     "next_attempt_at": r.next_attempt_at, "error": r.last_error}
                    for r in listed.transactions]
    if as_json:
        print(json_document({"records": records, "transactions": transactions}))
        return
    console = make_console(highlight=False)
    console.print(_table(f"Quarantined records ({len(records)})", records,
                         ("id", "company", "kind", "key", "reason", "field", "message", "status"),
                         limit))
    console.print(_table(f"Quarantined transactions ({len(transactions)})", transactions,
                         ("id", "company", "type", "attempts", "next_attempt_at", "error"),
                         limit))


def _table(title: str, rows: list[dict[str, Any]], columns: Sequence[str],
           limit: int) -> Table:
    shown = rows[:limit] if limit else rows
    more = len(rows) - len(shown)
    caption = (f"{more} more not shown: --limit 0 lists them all, --json as data, and "
               "--kind / --company narrow the list") if more else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in shown:
        table.add_row(*(Text(cell(row[c])) for c in columns))
    return table
