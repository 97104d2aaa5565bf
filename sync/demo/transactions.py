"""The demo's transactions chapter: approved invoices into the sample ERP, exactly once.

It writes ``icsync-transactions.toml`` beside the tour's configuration: the same file plus a
supplier check on the ERP sink (an invoice for a supplier the ERP does not know is refused) and a
webhook token in a file. Then it approves a few invoices in the sandbox, runs one poll pass (what
``icsync poll`` does), shows the ERP rows and the journal numbers iCompleat now carries, runs a
second pass that posts nothing, and finally serves the webhook receiver (what ``icsync run``
mounts), points the sandbox's push at it and approves one more invoice, whose push is answered
with its journal number.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from rich.table import Table
from starlette.applications import Starlette

from connectors.icompleat.sandbox.server import BackgroundServer
from sync.console.poll import render_poll
from sync.demo.context import COMPANY_ID, TENANT_ID, DemoContext
from sync.foundation.config import Config, load_config
from sync.foundation.errors import IcsyncError
from sync.foundation.files import write_private
from sync.runtime.context import open_runtime
from sync.transactions.run import poll_all
from sync.transactions.webhook import create_webhook_routes

_SUPPLIER_CHECK = ('required_supplier_table = "suppliers"\n'
                   'required_supplier_column = "supplier_code"\n')


def write_config(ctx: DemoContext) -> tuple[Path, bool]:
    """The chapter's configuration file; True when the supplier check could be added."""
    text = ctx.config_path.read_text(encoding="utf-8")
    checked = "[sinks.erp]\n" in text
    text = text.replace("[sinks.erp]\n", "[sinks.erp]\n" + _SUPPLIER_CHECK, 1)
    token_file = ctx.workdir / "webhook_tokens"
    write_private(token_file, (secrets.token_urlsafe(24) + "\n").encode("utf-8"))
    text += f'\n[webhook]\ntokens_file = "{token_file}"\n'
    path = ctx.workdir / "icsync-transactions.toml"
    path.write_text(text, encoding="utf-8")
    return path, checked


def money(value: float) -> dict[str, Any]:
    """iCompleat's money object for a GBP amount."""
    amount = {"Display": f"£{value:,.2f}", "Value": value}
    return {"Base": amount, "Local": dict(amount)}


def invoice(n: int, supplier: dict[str, Any]) -> dict[str, Any]:
    """An invoice of a few hundred pounds for ``supplier``."""
    net = 120.0 * n + 35.5
    return {"Type": "INV", "Title": f"Office supplies, March ({n})",
            "SupplierName": supplier["Name"],
            "References": {"Identifier": f"INV-2025-{n:04d}", "Supplier": supplier["Code"]},
            "Supplier": {"Name": supplier["Name"], "Code": supplier["Code"]},
            "Dates": {"Invoice": "2025-03-14", "PaymentDue": "2025-04-13"},
            "Net": money(net), "Vat": money(round(net * 0.2, 2)),
            "Gross": money(round(net * 1.2, 2)),
            "Analysis": [{"Name": "Currency Code", "Value": {"Code": "GBP"}}],
            "Lines": [{"Code": "5000", "Description": "Paper and toner", "Quantity": 1,
                       "UnitCost": money(net), "Net": money(net),
                       "Vat": money(round(net * 0.2, 2)), "Gross": money(round(net * 1.2, 2))}]}


def approve(ctx: DemoContext, bodies: list[dict[str, Any]]) -> list[str]:
    """Create and approve invoices in the sandbox, as finance would; their ids."""

    ids = []
    for body in bodies:
        tx = ctx.sandbox.state.create_transaction(TENANT_ID, COMPANY_ID, body)
        ctx.sandbox.state.approve(TENANT_ID, tx["Id"])
        ids.append(str(tx["Id"]))
    return ids


def known_suppliers(ctx: DemoContext, count: int) -> list[dict[str, Any]]:
    """A few suppliers the tour synced to iCompleat (so the ERP knows them too)."""

    return ctx.sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers")[:count]


def erp_rows(erp: Path, ids: list[str]) -> Iterator[tuple[str, ...]]:
    """(identifier, supplier, gross, journal number) of the ERP entries for ``ids``."""
    with contextlib.closing(sqlite3.connect(erp)) as db:
        for tx_id in ids:
            for row in db.execute("SELECT identifier, supplier_code, gross_base, journal_number "
                                  "FROM icsync_transactions WHERE transaction_id = ?", (tx_id,)):
                yield (str(row[0]), str(row[1]), f"£{float(row[2]):,.2f}", str(row[3]))


def shown_journal(ctx: DemoContext, tx_id: str) -> str | None:
    """The journal number iCompleat shows for a transaction."""

    tx = ctx.sandbox.state.transaction(TENANT_ID, tx_id)
    return (tx.get("Posting") or {}).get("JournalNumber")


@contextlib.asynccontextmanager
async def receiver(config: Config) -> AsyncIterator[str]:
    """The webhook routes served on loopback, with a runtime of their own; the base URL."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(config) as rt:
            app.router.routes.extend(create_webhook_routes(rt))
            yield

    server = BackgroundServer(Starlette(lifespan=lifespan))
    await asyncio.to_thread(server.start)
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


async def chapter_transactions(ctx: DemoContext) -> None:
    """Approved invoices polled into the ERP with journal numbers, then one pushed by webhook."""

    path, checked = write_config(ctx)
    config = load_config(path)
    suppliers = known_suppliers(ctx, 2)
    stranger = {"Code": "NEWCO-01", "Name": "Newco Trading Ltd (not in the ERP yet)"}
    ctx.heading("6. Approved transactions into the ERP", (
        "Finance approves three invoices in iCompleat, one of them from a supplier the ERP does "
        "not know yet. A poll pass records each in its ledger BEFORE touching the ERP, posts it "
        "(find-or-create on the iCompleat id, so a retry or a crash never posts twice) and "
        "writes the ERP's journal number back to iCompleat. The refused invoice is quarantined "
        f"with the reason and holds nobody up.\nConfiguration for this chapter: {path}"))
    ids = approve(ctx, [invoice(i + 1, s) for i, s in enumerate([*suppliers, stranger])])
    ctx.command("poll", "--config", str(path))
    first = (await poll_all(config, config.settings.companies))[0]
    render_poll([first], ctx.console)
    _show_rows(ctx, ids)
    again = (await poll_all(config, config.settings.companies))[0]
    ctx.console.print(f"A second pass posts nothing: {again.created} new ERP entries; "
                      f"{again.skipped} transactions left alone (posted already, or "
                      f"quarantined until their retry time).")
    journal = await _webhook_part(ctx, config, suppliers[0])
    expected = (2, 1) if checked else (3, 0)
    if (first.created, first.quarantined) != expected or again.created or journal is None:
        raise IcsyncError("the transactions chapter did not go as the tour says; see above")


def _show_rows(ctx: DemoContext, ids: list[str]) -> None:
    table = Table(title="ERP entries and what iCompleat shows")
    for column in ("invoice", "supplier", "gross", "ERP journal", "journal in iCompleat"):
        table.add_column(column)
    for (identifier, supplier, gross, journal), tx_id in zip(erp_rows(ctx.erp, ids), ids,
                                                              strict=False):
        table.add_row(identifier, supplier, gross, journal, shown_journal(ctx, tx_id) or "-")
    ctx.console.print(table)


async def _webhook_part(ctx: DemoContext, config: Config, supplier: dict[str, Any]) -> str | None:

    ctx.heading("7. The webhook", (
        "iCompleat can also push each approved transaction to a URL and expects the journal "
        "number in the answer. The receiver (which `icsync run` serves) checks the secret token "
        "in constant time, reads the transaction back from the API, and posts it through the "
        "same ledger: pushed twice, or while the poller holds it, it is still one ERP entry."))
    async with receiver(config) as url:
        endpoint = f"{url}/webhooks/icompleat/invoices"
        token = config.webhook_tokens[0]
        ctx.sandbox.state.set_webhook(TENANT_ID, endpoint, token, types=("INV",))
        ctx.sandbox.pusher.duplicates = 2
        tx_id = approve(ctx, [invoice(4, supplier)])[0]
        await asyncio.to_thread(ctx.sandbox.wait_for_pushes, 30)
        ctx.sandbox.pusher.duplicates = 1
    answers = [d.journal_number for d in ctx.sandbox.pusher.deliveries if d.transaction_id == tx_id]
    ctx.console.print(f"iCompleat pushed invoice INV-2025-0004 to {endpoint} twice; the answers "
                      f"carried journal numbers {answers}; iCompleat now shows "
                      f"{shown_journal(ctx, tx_id)}, and the ERP holds "
                      f"{len(list(erp_rows(ctx.erp, [tx_id])))} entry for it.")
    same = len(set(answers)) == 1 and answers[0] == shown_journal(ctx, tx_id)
    return answers[0] if same and answers else None
