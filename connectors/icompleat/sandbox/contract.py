"""How the sandbox reads request bodies, and which operations it pretends not to have.

Binding: the real service bound body keys case-insensitively (the public client sent camelCase
and it worked), so by default every object key that matches a name of the contract ignoring case
is read as that name; ``strict`` keeps the exact-case binding, for tests proving icsync itself
sends PascalCase.

Unsupported operations: a route name (or :data:`JOURNAL_WRITE`, the ``JournalNumber`` form of
``transaction.edit``) mapped to 404 or 405 is answered with that status before it is applied,
as a live tenant without the call would answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from connectors.icompleat.routes import (
    CONTINUATION_TOKEN,
    JOURNAL_NUMBER,
    TRANSACTION_STATUS,
    Route,
)
from sync.foundation.entities import KINDS

JOURNAL_WRITE = "transaction.journal"  # the journal write-back form of transaction.edit
UNSUPPORTED_STATUSES = (404, 405)

# Names the contract uses in bodies beyond the kinds' fields and the routes' payloads.
_OTHER_NAMES = (
    CONTINUATION_TOKEN, JOURNAL_NUMBER, TRANSACTION_STATUS, "Id", "Code", "Name", "Type",
    "Mandatory", "Active", "Values", "Owner", "Company", "References", "Identifier",
    "PurchaseOrder", "Supplier", "Dates", "Created", "Invoice", "PaymentDue", "Delivery", "Title",
    "SupplierName", "Net", "Vat", "Gross", "Base", "Local", "Display", "Value", "Lines", "Number",
    "Description", "Quantity", "UnitCost", "Analysis", "FieldCode",
)


def vocabulary(routes: Iterable[Route]) -> dict[str, str]:
    """Every body name of the contract by its case-folded form."""
    names = [*_OTHER_NAMES]
    names += [f.name for kind in KINDS.values() for f in kind.fields]
    names += [n for r in routes for n in (r.request_payload, r.response_payload) if n]
    return {n.casefold(): n for n in names}


def bind_keys(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every object key that matches a contract name (ignoring case) renamed to it.

    A key matching no name is kept as sent, so validation still names it."""
    if isinstance(value, dict):
        return {names.get(str(k).casefold(), k): bind_keys(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [bind_keys(v, names) for v in value]
    return value


@dataclass
class ContractSwitches:
    """Body binding and the operations answered 404/405; reset with the sandbox."""

    strict_keys: bool = False
    unsupported: dict[str, int] = field(default_factory=dict)

    def set_unsupported(self, operation: str, status: int | None) -> None:
        """Answer ``operation`` with ``status`` (404 or 405) from now on; None supports it again."""
        if status is None:
            self.unsupported.pop(operation, None)
            return
        if status not in UNSUPPORTED_STATUSES:
            raise ValueError(f"an unsupported operation answers 404 or 405, not {status}")
        self.unsupported[operation] = status

    def refusal(self, route: Route, body: Any) -> int | None:
        """The status to answer instead of applying ``route`` with ``body``, or None."""
        if route.name in self.unsupported:
            return self.unsupported[route.name]
        if (JOURNAL_WRITE in self.unsupported and route.name == "transaction.edit"
                and isinstance(body, dict) and JOURNAL_NUMBER in body):
            return self.unsupported[JOURNAL_WRITE]
        return None

    def clear(self) -> None:
        """Back to the defaults: case-insensitive binding, every operation supported."""
        self.strict_keys = False
        self.unsupported.clear()
