"""What every connector shares (the memory connector included, but not only it).

- :func:`kind_config` (the per-kind configuration or a ConfigError naming the key) and
  :func:`unconfigured`;
- :func:`frame_from_records` (rows as an all-object frame, columns in first-seen order);
- the posting record of a transaction as flat data (:func:`header_record`,
  :func:`line_records`) with the ``required_fields`` check (:func:`check_required`) that every
  sink applies before writing, and stable JSON text (:func:`to_json`).

Sources return the source's OWN columns. Mapping, ``defaults`` and trimming are applied by
normalisation (``sync.reference.rules.normalise``), never by a source, so that every source
behaves the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from connectors.base import CompanyRef
from connectors.icompleat.models import Transaction
from sync.foundation.config import KindSourceConfig
from sync.foundation.entities import get_kind
from sync.foundation.errors import ConfigError, SinkRejected

TRANSACTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Transaction))
_TAX_CODE_NAMES = ("tax code", "taxcode", "vat code", "vatcode")


def kind_config(source: str, kinds: Mapping[str, KindSourceConfig], kind: str) -> KindSourceConfig:
    """The configuration of ``kind`` in source ``source``; ConfigError naming the key if absent."""
    if kind not in kinds:
        raise unconfigured(source, kind)
    return kinds[kind]


def unconfigured(source: str, kind: str) -> ConfigError:
    """The error for reading a kind that source ``source`` has no configuration for."""
    key = f"sources.{source}.kinds.{kind}"
    try:
        get_kind(kind)
    except ValueError as exc:
        return ConfigError(str(exc), key=key)
    return ConfigError(f"source {source!r} is not configured for {kind}; add a [{key}] table "
                       f"or remove {kind!r} from the company's kinds", key=key)


def frame_from_records(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``rows`` as a frame of object columns (first-seen order); a missing key becomes None."""
    columns = list(dict.fromkeys(str(k) for row in rows for k in row))
    data = {c: pd.Series([row.get(c) for row in rows], dtype=object) for c in columns}
    return pd.DataFrame(data, columns=columns)


def describe(tx: Transaction) -> str:
    """How errors name a transaction: its id, plus its document number when it has one."""
    return f"transaction {tx.id}" + (f" ({tx.identifier})" if tx.identifier else "")


def validate_required_fields(sink: str, names: Iterable[str]) -> None:
    """ConfigError naming ``sinks.<sink>.required_fields`` for a name that is not a field."""
    unknown = [n for n in names if n not in TRANSACTION_FIELDS]
    if unknown:
        raise ConfigError(f"unknown transaction fields {unknown}; "
                          f"known: {list(TRANSACTION_FIELDS)}", key=f"sinks.{sink}.required_fields")


def check_required(tx: Transaction, names: Iterable[str], sink: str) -> None:
    """SinkRejected when ``tx`` lacks a field the ERP needs (None, empty text or no lines)."""
    for name in names:
        if getattr(tx, name) in (None, "", ()):
            raise SinkRejected(
                f"{describe(tx)}: {name} is missing and the ERP sink {sink!r} requires it "
                f"(sinks.{sink}.required_fields); complete it in iCompleat, then retry",
                transaction_id=tx.id, reason=f"missing_{name}")


def header_record(tx: Transaction, company: CompanyRef) -> dict[str, Any]:
    """The header of an ERP posting as flat canonical fields (see ``connectors.sql``)."""
    return {
        "transaction_id": tx.id, "company": company.name,
        "company_id": company.company_id or tx.company_id, "type": tx.type,
        "identifier": tx.identifier, "purchase_order": tx.purchase_order,
        "supplier_code": tx.supplier_code, "supplier_name": tx.supplier_name, "title": tx.title,
        "created": tx.created, "invoice_date": tx.invoice_date, "payment_due": tx.payment_due,
        "delivery_date": tx.delivery_date, "currency": tx.currency,
        "net_base": tx.net.base, "vat_base": tx.vat.base, "gross_base": tx.gross.base,
        "net_local": tx.net.local, "vat_local": tx.vat.local, "gross_local": tx.gross.local,
        "status": tx.status, "raw_json": to_json(tx.raw),
    }


def line_records(tx: Transaction) -> list[dict[str, Any]]:
    """One flat record per line; amounts in the document currency, analysis as JSON."""
    return [{
        "transaction_id": tx.id, "line_number": line.number if line.number is not None else i,
        "account_code": line.code, "tax_code": tax_code(line.analysis, line.id, tx),
        "description": line.description, "quantity": line.quantity,
        "unit_cost": line.unit_cost.local, "net": line.net.local, "vat": line.vat.local,
        "gross": line.gross.local, "analysis_json": to_json(dict(line.analysis)),
    } for i, line in enumerate(tx.lines, start=1)]


def tax_code(analysis: Mapping[str, str], line_id: str | None, tx: Transaction) -> str | None:
    """A line's tax code: its "Tax Code" analysis value, else the raw line's ``TaxCode``."""
    for name, value in analysis.items():
        if name.casefold() in _TAX_CODE_NAMES:
            return value
    for raw in tx.raw.get("Lines") or ():
        if isinstance(raw, Mapping) and raw.get("Id") == line_id and raw.get("TaxCode"):
            return str(raw["TaxCode"])
    return None


def to_json(value: Any) -> str:
    """Stable JSON text (sorted keys, unicode kept; Decimal and dates as strings)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=json_default)


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback: Decimal and dates as text, anything else by ``str``."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value) if isinstance(value, Decimal) else repr(value)
