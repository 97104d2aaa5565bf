"""Shared test data: one reference dataset for every source, realistic iCompleat transactions."""

from __future__ import annotations

from typing import Any

from connectors.base import CompanyRef
from connectors.icompleat.models import Transaction, parse_transaction

COMPANY = CompanyRef("O'Brien & Sons", "c0ffee00-0000-4000-8000-000000000001")
EVIL = CompanyRef("x' OR '1'='1", "c0ffee00-0000-4000-8000-000000000002")
OTHER = CompanyRef("Other Ltd", "c0ffee00-0000-4000-8000-000000000003")

# Every value is text, as an ERP export writes it; "0042" and "NA" must survive every reader.
ROWS: dict[str, list[dict[str, str]]] = {
    "currencies": [
        {"Code": "GBP", "Name": "Pound sterling £", "Rate": "1", "IsBase": "true"},
        {"Code": "EUR", "Name": "Euro €", "Rate": "1.17", "IsBase": "false"},
    ],
    "tax_codes": [
        {"Code": "S", "Name": "Standard 20%", "Rate": "20"},
        {"Code": "Z", "Name": "Zero ☕", "Rate": "0"},
    ],
    "account_codes": [
        {"Code": "0042", "Name": "Stationery ✏️"},
        {"Code": "NA", "Name": "Not applicable"},
        {"Code": "5000", "Name": "Cost of sales"},
    ],
    "delivery_sites": [
        {"Code": "HQ", "Name": "Head office 🏢", "Address1": "1 Rue de l'Église",
         "TownOrCity": "Zürich", "Postcode": "8001", "IsoCode": "CH"},
    ],
    "custom_fields": [
        {"Field": "Department", "Code": "0010", "Name": "Finance", "Type": "List",
         "Mandatory": "true"},
        {"Field": "Department", "Code": "0020", "Name": "Ops 😀", "Type": "List",
         "Mandatory": "true"},
        {"Field": "Project", "Code": "P-1", "Name": "Apollo", "Type": "List",
         "Mandatory": "false"},
    ],
    "suppliers": [
        {"Code": "0042", "Name": "Müller GmbH 😀", "AddressLine1": "Hauptstraße 1",
         "IsoCode": "DE", "Email": "ap@mueller.example", "VatNumber": "DE136695976"},
        {"Code": "S-2", "Name": 'O\'Brien "Quotes" & Sons', "AddressLine1": "1 Quay St",
         "IsoCode": "IE", "Email": "x@obrien.example", "VatNumber": "IE6388047V"},
        {"Code": "S-3", "Name": "שלום \u200f Ltd", "AddressLine1": "Rehov 5", "IsoCode": "IL",
         "Email": "a@b.example", "VatNumber": "n/a"},
    ],
}
DECOY: dict[str, str] = {"Code": "DECOY", "Name": "belongs to another company"}


def _money(value: float | None) -> dict[str, Any]:
    return {"Base": {"Display": f"£{value}", "Value": value},
            "Local": {"Display": f"€{value}", "Value": value}}


def detail(n: int, *, supplier: str | None = "0042", lines: int = 2) -> dict[str, Any]:
    """An approved invoice in the detail shape the API returns (money objects, lines, analysis)."""
    tx_id = f"5d1f0a3e-0000-4000-8000-{n:012d}"
    return {
        "Id": tx_id, "Company": {"Id": COMPANY.company_id, "Name": COMPANY.name},
        "Owner": {"Id": "u-1", "Name": "Ann"}, "Type": "INV", "Status": "APPR",
        "References": {"Identifier": f"INV-{n:05d}", "PurchaseOrder": f"PO-{n}",
                       "Supplier": supplier},
        "Dates": {"Created": "2024-05-01T10:11:12.1234567Z", "Invoice": "2024-05-01T00:00:00",
                  "PaymentDue": "2024-05-31T00:00:00", "Delivery": "string"},
        "Title": "Office chairs ☕", "SupplierName": "Müller GmbH",
        "Supplier": {"Name": "Müller GmbH", "Code": supplier},
        "Net": _money(100.0 * n), "Vat": _money(20.0 * n), "Gross": _money(120.0 * n),
        "LastUpdatedGuid": f"g-{n}",
        "Analysis": [{"Name": "Currency Code", "Value": {"Code": "GBP"}},
                     {"Name": "Department", "Value": {"Code": "0010"}}],
        "Lines": [
            {"Id": f"{tx_id}-L{i}", "Number": i, "Code": "5000", "Description": f"Chair {i} 😀",
             "Quantity": 2 if i % 2 else None, "UnitCost": {"Local": {"Value": 25.5}},
             "Net": {"Local": {"Value": 51}}, "Vat": {"Local": {"Value": 10.2}},
             "Gross": {"Local": {"Value": 61.2}},
             "Analysis": [{"Name": "Tax Code", "Value": {"Code": "S"}}]}
            for i in range(1, lines + 1)
        ],
    }


def transaction(n: int, **kwargs: Any) -> Transaction:
    """:func:`detail` parsed as the engine parses it."""
    return parse_transaction(detail(n, **kwargs))
