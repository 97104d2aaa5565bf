"""Tolerant parsing of iCompleat's transaction objects into plain value objects.

iCompleat omits absent values or sends them as null, sends dates that are not dates
(``"Delivery": "string"``), and wraps money as ``{"Base": {"Display", "Value"}, "Local": {...}}``.
Everything here accepts all of that: a missing or unparseable value becomes None, never an error,
except a missing ``Id``, without which a transaction cannot be posted exactly once. A number
past the bounds of :mod:`sync.foundation.numbers` (``"1e99999999"``, ``"Infinity"``, 70 digits)
is never converted: the field becomes None and :attr:`Transaction.problems` says which field and
why, so the poster quarantines the transaction instead of posting a wrong amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sync.foundation.numbers import NumberRefused, bounded_decimal

TYPE_NAMES = {"ORD": "orders", "INV": "invoices", "CRD": "credit-notes"}
STATUS_APPROVED = "APPR"


@dataclass(frozen=True)
class Money:
    """An amount in the company's base currency and in the document's own currency."""

    base: Decimal | None = None
    local: Decimal | None = None


@dataclass(frozen=True)
class Line:
    """One transaction line."""

    id: str | None
    number: int | None
    code: str | None
    description: str | None
    quantity: Decimal | None
    unit_cost: Money
    net: Money
    vat: Money
    gross: Money
    analysis: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Transaction:
    """An iCompleat purchase order, invoice or credit note, with its raw JSON kept."""

    id: str
    company_id: str | None
    type: str | None
    status: str | None
    identifier: str | None
    purchase_order: str | None
    supplier_code: str | None
    supplier_name: str | None
    title: str | None
    created: datetime | None
    invoice_date: date | None
    payment_due: date | None
    delivery_date: date | None
    currency: str | None
    net: Money
    vat: Money
    gross: Money
    journal_number: str | None
    last_updated: str | None
    lines: tuple[Line, ...]
    analysis: Mapping[str, str]
    raw: Mapping[str, Any]
    # Fields whose numbers were refused (out of bounds, not finite): never posted as they are.
    problems: tuple[str, ...] = ()


def _get(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]..., None as soon as a step is missing or not an object."""
    for step in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(step)
    return obj


def text(value: Any) -> str | None:
    """A non-empty string, or None."""
    if value is None or isinstance(value, Mapping | list):
        return None
    result = str(value).strip()
    return result or None


def decimal(value: Any, problems: list[str] | None = None, where: str = "") -> Decimal | None:
    """A bounded Decimal from a number or numeric string, or None; a refused number is None
    and, when ``problems`` is given, noted there as ``where: why``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return bounded_decimal(str(value).replace(",", "") if isinstance(value, str) else value)
    except NumberRefused as exc:
        if problems is not None:
            problems.append(f"{where or 'a number'}: {exc}")
        return None
    except InvalidOperation:
        return None


def money(value: Any, problems: list[str] | None = None, where: str = "") -> Money:
    """``{"Base": {"Value": 40}, "Local": {...}}`` (or a bare number) as :class:`Money`."""
    if not isinstance(value, Mapping):
        amount = decimal(value, problems, where)
        return Money(amount, amount)
    base = decimal(_get(value, "Base", "Value"), problems, f"{where}.Base.Value")
    local = decimal(_get(value, "Local", "Value"), problems, f"{where}.Local.Value")
    return Money(base if base is not None else local, local if local is not None else base)


def timestamp(value: Any) -> datetime | None:
    """An aware datetime from an ISO string (7-digit fractions and ``Z`` accepted), or None."""
    raw = text(value)
    if raw is None:
        return None
    raw = raw.replace("Z", "+00:00")
    head, dot, tail = raw.partition(".")
    if dot:  # Python accepts at most 6 fraction digits; iCompleat sends 7.
        digits = len(tail) - len(tail.lstrip("0123456789"))
        tail = tail[:min(digits, 6)] + tail[digits:]
        raw = f"{head}.{tail}"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def day(value: Any) -> date | None:
    """The calendar date of an ISO date or timestamp string, or None."""
    parsed = timestamp(value)
    return parsed.date() if parsed else None


def analysis_map(items: Any) -> dict[str, str]:
    """``[{"Name": n, "Value": {"Code": c}}]`` as ``{n: c}``; malformed entries are skipped."""
    result: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        name = text(_get(item, "Name"))
        value = _get(item, "Value")
        code = text(_get(value, "Code")) if isinstance(value, Mapping) else text(value)
        if name and code:
            result[name] = code
    return result


def _line(raw: Any, problems: list[str], where: str) -> Line:
    return Line(
        id=text(_get(raw, "Id")), number=_int(_get(raw, "Number"), problems, f"{where}.Number"),
        code=text(_get(raw, "Code")), description=text(_get(raw, "Description")),
        quantity=decimal(_get(raw, "Quantity"), problems, f"{where}.Quantity"),
        unit_cost=money(_get(raw, "UnitCost"), problems, f"{where}.UnitCost"),
        net=money(_get(raw, "Net"), problems, f"{where}.Net"),
        vat=money(_get(raw, "Vat"), problems, f"{where}.Vat"),
        gross=money(_get(raw, "Gross"), problems, f"{where}.Gross"),
        analysis=analysis_map(_get(raw, "Analysis")),
    )


def _int(value: Any, problems: list[str], where: str) -> int | None:
    number = decimal(value, problems, where)
    return int(number) if number is not None and number == number.to_integral_value() else None


def parse_transaction(raw: Mapping[str, Any]) -> Transaction:
    """Parse a list item or detail object; ValueError when it has no ``Id``."""
    tx_id = text(raw.get("Id"))
    if tx_id is None:
        raise ValueError("transaction has no Id")
    analysis = analysis_map(raw.get("Analysis"))
    lines = raw.get("Lines")
    problems: list[str] = []
    parsed_lines = tuple(_line(x, problems, f"Lines.{i}") for i, x in enumerate(lines)) \
        if isinstance(lines, list) else ()
    return Transaction(
        id=tx_id, company_id=text(_get(raw, "Company", "Id")), type=text(raw.get("Type")),
        status=text(raw.get("Status")),
        identifier=text(_get(raw, "References", "Identifier")),
        purchase_order=text(_get(raw, "References", "PurchaseOrder")),
        supplier_code=text(_get(raw, "References", "Supplier")) or text(_get(raw, "Supplier",
                                                                              "Code")),
        supplier_name=text(_get(raw, "Supplier", "Name")) or text(raw.get("SupplierName")),
        title=text(raw.get("Title")), created=timestamp(_get(raw, "Dates", "Created")),
        invoice_date=day(_get(raw, "Dates", "Invoice")),
        payment_due=day(_get(raw, "Dates", "PaymentDue")),
        delivery_date=day(_get(raw, "Dates", "Delivery")),
        currency=analysis.get("Currency Code"),
        net=money(raw.get("Net"), problems, "Net"), vat=money(raw.get("Vat"), problems, "Vat"),
        gross=money(raw.get("Gross"), problems, "Gross"),
        journal_number=text(_get(raw, "Posting", "JournalNumber")),
        last_updated=text(raw.get("LastUpdatedGuid")),
        lines=parsed_lines, analysis=analysis, raw=raw, problems=tuple(problems),
    )
