"""Transactions: create (status SAV), list by company / status / type in pages of 20, detail, and
the partial edit that approves, denies or records a journal number (the ``Posting`` block).

A journal number is recorded once: the same number again is accepted and changes nothing, a
different one is ErrorCode 12. Approving a transaction calls ``on_approved`` (the webhook pusher)
after the state lock is released, so a push never blocks an edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.icompleat.routes import JOURNAL_NUMBER, TRANSACTION_PAGE_SIZE, TRANSACTION_STATUS
from connectors.icompleat.sandbox.core import StateCore, Tenant, default_user_id, fold
from connectors.icompleat.sandbox.validate import check_short_text
from connectors.icompleat.sandbox.wire import (
    UNKNOWN_TRANSACTION,
    Record,
    invalid,
    iso_now,
    new_id,
    reject,
)

TYPES = ("ORD", "INV", "CRD")
STATUSES = ("SAV", "PEND", "APPR", "DEN", "DEL")
APPROVED = "APPR"
POSTING = "Posting"
EDITABLE = (TRANSACTION_STATUS, JOURNAL_NUMBER, "Title", "References", "Dates", "SupplierName",
            "Supplier", "Net", "Vat", "Gross", "Lines", "Analysis")
DETAIL_ONLY = ("Lines", "Analysis", "Supplier")
ASSIGNED = ("Id", "Company", "Status", "LastUpdatedGuid", POSTING)


def tx_scope(tenant_id: str) -> str:
    """The store scope of one tenant's transactions."""
    return f"tx:{fold(tenant_id)}"


def list_item(tx: Record) -> Record:
    """The list shape of a transaction: the detail without lines, analysis and supplier."""
    return {k: v for k, v in tx.items() if k not in DETAIL_ONLY}


def _lines(raw: Any) -> list[Record]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise invalid("Transaction", "Lines", "must be a list of line objects")
    lines = [dict(line) for line in raw]
    for number, line in enumerate(lines, start=1):
        line["Id"] = line.get("Id") or new_id()
        line["Number"] = line.get("Number") or number
    return lines


def _owner(raw: Any, tenant: Tenant) -> Record:
    if raw is None:
        return dict(tenant.users[fold(default_user_id(tenant.id))])
    if not isinstance(raw, dict) or not isinstance(raw.get("Id"), str):
        raise invalid("Transaction", "Owner", "must be an object with the Id of a user")
    return raw


def _check_new(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("Transaction", "Type", "belongs to a transaction, but the body is not an "
                                             "object")
    if body.get("Id") is not None:
        raise invalid("Transaction", "Id", "is assigned by iCompleat; leave it out")
    if body.get("Type") not in TYPES:
        raise invalid("Transaction", "Type", f"must be one of {', '.join(TYPES)}, got "
                                             f"{body.get('Type')!r}")
    return body


class TransactionOps(StateCore):
    """Operations on transactions."""

    on_approved: Callable[[str, str], None] | None = None

    def _loaded(self, tenant: Tenant) -> None:
        super()._loaded(tenant)
        docs = sorted((doc for _, doc in self.store.items(tx_scope(tenant.id))),
                      key=lambda d: int(d["seq"]))
        for doc in docs:
            tenant.transactions[fold(doc["tx"]["Id"])] = doc["tx"]
            tenant.tx_order[fold(doc["tx"]["Id"])] = int(doc["seq"])

    def _save_tx(self, tenant: Tenant, tx: Record) -> None:
        key = fold(tx["Id"])
        seq = tenant.tx_order.setdefault(key, len(tenant.tx_order))
        tenant.transactions[key] = tx
        self.store.put(tx_scope(tenant.id), key, {"seq": seq, "tx": tx})

    def _tx(self, tenant: Tenant, tx_id: str | None) -> Record:
        found = tenant.transactions.get(fold(tx_id or ""))
        if found is None:
            raise reject(UNKNOWN_TRANSACTION, f"no transaction with Id {tx_id!r}; list the "
                                              "transactions to see their ids")
        return found

    def create_transaction(self, tenant_id: str, company_id: str | None, body: Any) -> Record:
        """Create a transaction (status SAV) from the detail shape without ``Id``."""
        raw = _check_new(body)
        with self._lock:
            tenant = self.get_tenant(tenant_id)
            company = self.company(tenant_id, company_id)
            owner = _owner(raw.get("Owner"), tenant)
            self.check_user(tenant, owner["Id"])
            tx = {k: v for k, v in raw.items() if v is not None and k not in ASSIGNED}
            tx.update(Id=new_id(), Company=company.ref(), Owner=owner, Status="SAV",
                      LastUpdatedGuid=new_id(), References=raw.get("References") or {},
                      Dates={"Created": iso_now(self.now()), **(raw.get("Dates") or {})},
                      Lines=_lines(raw.get("Lines")))
            self._save_tx(tenant, tx)
            return dict(tx)

    def list_transactions(self, tenant_id: str, company_id: str | None, page: int, *,
                          user_id: str | None = None, status: str | None = None,
                          tx_type: str | None = None,
                          size: int = TRANSACTION_PAGE_SIZE) -> list[Record]:
        """Page ``page`` (from 1) of the company's transactions (every company's when
        ``company_id`` is None) matching the filters, in creation order, oldest first."""
        with self._lock:
            tenant = self.get_tenant(tenant_id)
            company = self.company(tenant_id, company_id) if company_id is not None else None
            self.check_user(tenant, user_id)
            found = [tx for tx in tenant.transactions.values()
                     if (company is None or fold(tx["Company"]["Id"]) == fold(company.id))
                     and (status is None or fold(tx["Status"]) == fold(status))
                     and (tx_type is None or fold(tx.get("Type", "")) == fold(tx_type))
                     and (user_id is None or fold(tx["Owner"].get("Id", "")) == fold(user_id))]
            return [list_item(tx) for tx in found[(page - 1) * size: page * size]]

    def transaction(self, tenant_id: str, tx_id: str | None, user_id: str | None = None) -> Record:
        """The detail of one transaction (ErrorCode 10 when unknown, 3 for a bad user)."""
        with self._lock:
            tenant = self.get_tenant(tenant_id)
            self.check_user(tenant, user_id)
            return dict(self._tx(tenant, tx_id))

    def all_transactions(self, tenant_id: str) -> list[Record]:
        """Every transaction of the tenant, oldest first, for checkers."""
        with self._lock:
            return [dict(tx) for tx in self.get_tenant(tenant_id).transactions.values()]

    def edit_transaction(self, tenant_id: str, tx_id: str | None, body: Any) -> Record:
        """Apply a partial edit; approving pushes the transaction to its webhook endpoint."""
        with self._lock:
            tenant = self.get_tenant(tenant_id)
            old = self._tx(tenant, tx_id)
            new = _edited(old, _check_edit(body), iso_now(self.now()))
            if new != old:
                new["LastUpdatedGuid"] = new_id()
                self._save_tx(tenant, new)
        if new["Status"] == APPROVED and old["Status"] != APPROVED and self.on_approved:
            self.on_approved(tenant.id, new["Id"])
        return dict(new)

    def approve(self, tenant_id: str, tx_id: str) -> Record:
        """Approve a transaction, as a user finishing its approval in iCompleat."""
        return self.edit_transaction(tenant_id, tx_id, {TRANSACTION_STATUS: APPROVED})


def _check_edit(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not body:
        raise invalid("Transaction", TRANSACTION_STATUS, "or another editable field must be "
                                                         "sent in a JSON object")
    for key in body:
        if key not in EDITABLE:
            raise invalid("Transaction", str(key), f"cannot be edited; editable: {EDITABLE}")
    status = body.get(TRANSACTION_STATUS)
    if status is not None and status not in STATUSES:
        raise invalid("Transaction", TRANSACTION_STATUS, f"must be one of {STATUSES}, got "
                                                         f"{status!r}")
    return body


def _edited(old: Record, body: dict[str, Any], now: str) -> Record:
    """``old`` with ``body`` applied; ErrorCode 12 for a change the rules forbid."""
    where = f"Transaction {old['Id']}"
    new = {**old, **{k: v for k, v in body.items() if k != JOURNAL_NUMBER and v is not None}}
    if old["Status"] == "DEL" and new["Status"] != "DEL":
        raise invalid(where, TRANSACTION_STATUS, "cannot change: the transaction is deleted")
    journal = body.get(JOURNAL_NUMBER)
    if journal is None:
        return new
    number = check_short_text(journal, where=where, field=JOURNAL_NUMBER)
    if new["Status"] != APPROVED:
        raise invalid(where, JOURNAL_NUMBER, f"cannot be recorded: the transaction is "
                                             f"{new['Status']}, not {APPROVED}")
    posting = old.get(POSTING)
    if posting and posting[JOURNAL_NUMBER] != number:
        raise invalid(where, JOURNAL_NUMBER, f"is already {posting[JOURNAL_NUMBER]!r}; a "
                                             f"transaction takes one journal number, not "
                                             f"{number!r}")
    new[POSTING] = posting or {JOURNAL_NUMBER: number, "PostedAt": now}
    return new
