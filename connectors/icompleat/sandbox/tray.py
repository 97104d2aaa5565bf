"""The "Posting failures" tray: approved transactions whose push got no journal number.

One entry per transaction (a repeated failure updates it and counts the attempts). Recording a
journal number, by the push or by the API, takes the transaction out of the tray; a failure that
arrives after the transaction already carries a journal number is not kept.
"""

from __future__ import annotations

from typing import Any

from connectors.icompleat.sandbox.core import fold
from connectors.icompleat.sandbox.transactions import POSTING, TransactionOps
from connectors.icompleat.sandbox.wire import Record, iso_now, new_id

FAILURES = "posting-failures"


def _key(tenant_id: str, tx_id: str) -> str:
    return f"{fold(tenant_id)}:{fold(tx_id)}"


class TrayOps(TransactionOps):
    """The posting failures tray, kept with the transactions."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._failures: dict[str, Record] = dict(self.store.items(FAILURES))

    def add_failure(self, tenant_id: str, tx_id: str, url: str, reason: str) -> Record | None:
        """Put the transaction in the tray (or count another attempt); None if it is posted."""
        with self._lock:
            tx = self.transaction(tenant_id, tx_id)
            if tx.get(POSTING):
                return None
            key = _key(tenant_id, tx_id)
            old = self._failures.get(key, {})
            entry = {"Id": old.get("Id") or new_id(), "TenantId": tenant_id,
                     "TransactionId": tx["Id"], "CompanyId": tx["Company"]["Id"],
                     "Type": tx.get("Type"), "Url": url, "Reason": reason,
                     "FailedAt": iso_now(self.now()), "Attempts": old.get("Attempts", 0) + 1}
            self._failures[key] = entry
            self.store.put(FAILURES, key, entry)
            return dict(entry)

    def clear_failure(self, tenant_id: str, tx_id: str) -> None:
        """Take the transaction out of the tray (no error when it is not there)."""
        with self._lock:
            key = _key(tenant_id, tx_id)
            if self._failures.pop(key, None) is not None:
                self.store.delete(FAILURES, key)

    def posting_failures(self, tenant_id: str | None = None) -> list[Record]:
        """The tray, oldest failure first, optionally for one tenant."""
        with self._lock:
            return [dict(f) for f in self._failures.values()
                    if tenant_id is None or fold(f["TenantId"]) == fold(tenant_id)]

    def posting_failure(self, failure_id: str) -> Record:
        """One entry of the tray by its Id; KeyError when there is none."""
        with self._lock:
            for entry in self._failures.values():
                if fold(entry["Id"]) == fold(failure_id):
                    return dict(entry)
        raise KeyError(f"no posting failure {failure_id!r}")

    def edit_transaction(self, tenant_id: str, tx_id: str | None, body: Any) -> Record:
        """As TransactionOps, and a recorded journal number empties the transaction's tray."""
        tx = super().edit_transaction(tenant_id, tx_id, body)
        if tx.get(POSTING):
            self.clear_failure(tenant_id, tx["Id"])
        return tx
