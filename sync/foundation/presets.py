"""Ready-made mappings for the ERPs iCompleat customers run most, as data.

A preset names an ERP's OWN columns (or, for a SQL ERP, its own tables) for each kind, so a user
writes ``preset = "sage50"`` in a ``[sources.<name>]`` table (every kind) or in one kind's table,
instead of a mapping. What the user writes beside it wins, entry by entry: a kind's ``mapping``
adds to or replaces the preset's entries, and ``file``, ``encoding``, ``where``, ``query`` ...
replace the preset's. :func:`resolve` does that merge on the raw configuration, before it is
validated, so the merged result is what is checked, hashed and run.

Optional fields are mapped as ``{ columns = [...], optional = true }``: an export that leaves
a column out (a Sage 50 report without bank details) simply has no value for that field, while
Code and Name must be present. Each preset has a test over a sample in the ERP's real column
layout (tests/erp/samples).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def _opt(*columns: str) -> dict[str, Any]:
    """An optional field: the first of ``columns`` that the export has and fills."""
    return {"columns": list(columns), "optional": True}


_SAGE50_SUPPLIERS = {
    "Code": ["A/C", "Account Reference"],
    "Name": ["Name", "Account Name"],
    "AddressLine1": _opt("Address Line 1", "Street 1", "Address 1"),
    "AddressLine2": _opt("Address Line 2", "Street 2", "Address 2"),
    "TownOrCity": _opt("Address Line 3", "Town", "Address 3"),
    "StateOrCounty": _opt("Address Line 4", "County", "Address 4"),
    "PostcodeOrZip": _opt("Address Line 5", "Post Code", "Address 5"),
    "IsoCode": _opt("Country Code", "COUNTRY_CODE"),
    "Telephone": _opt("Telephone"),
    "Email": _opt("E-mail", "Email"),
    "VatNumber": _opt("VAT Number", "Vat Registration Number"),
    "BankName": _opt("Bank Name", "BANK_NAME"),
    "BankAccountNumber": _opt("IBAN", "Bank Account Number", "BANK_ACCOUNT_NUMBER"),
    "BankSortCode": _opt("Bank Sort Code", "BANK_SORT_CODE", "BIC"),
    "PaymentDueDays": _opt("Payment Due Days"),
}

PRESETS: dict[str, dict[str, Any]] = {
    "sage50": {
        "erp": "Sage 50 Accounts (UK): CSV exports of the Supplier Record CSV and Nominal Record "
               "CSV reports (Windows-1252, CRLF, a trailer line of commas)",
        "source": "files",
        "kinds": {
            "suppliers": {"file": "suppliers.csv", "encoding": "cp1252",
                          "mapping": _SAGE50_SUPPLIERS},
            "account_codes": {"file": "nominal.csv", "encoding": "cp1252",
                              "mapping": {"Code": ["N/C", "Nominal Code", "Ref"],
                                          "Name": ["Name", "Nominal Name"]}},
            "tax_codes": {"file": "tax_codes.csv", "encoding": "cp1252",
                          "mapping": {"Code": ["Tax Code", "T/C", "Code"],
                                      "Name": ["Description", "Name"],
                                      "Rate": ["Rate", "Rate %"]}},
            "currencies": {"file": "currencies.csv", "encoding": "cp1252",
                           "mapping": {"Code": ["Code", "Currency Code"], "Name": ["Name"],
                                       "Rate": ["Exchange Rate", "Rate"]}},
        },
    },
    "sage200": {
        "erp": "Sage 200 (its SQL Server database: PLSupplierAccount, PLSupplierLocation, "
               "NLNominalAccount, SYSTaxRate, SYSCurrency)",
        "source": "sql",
        "kinds": {
            "suppliers": {
                "query": "SELECT a.SupplierAccountNumber, a.SupplierAccountName, "
                         "a.TaxRegistrationCode, a.PaymentTermsInDays, a.AccountIsOnHold, "
                         "l.AddressLine1, l.AddressLine2, l.City, l.County, l.PostCode, "
                         "l.TelephoneNo, l.EmailAddress, c.Code AS CountryCode "
                         "FROM PLSupplierAccount a "
                         "LEFT JOIN PLSupplierLocation l ON l.PLSupplierAccountID = "
                         "a.PLSupplierAccountID AND l.IsDefault = 1 "
                         "LEFT JOIN SYSCountryCode c ON c.SYSCountryCodeID = a.SYSCountryCodeID",
                "mapping": {"Code": "SupplierAccountNumber", "Name": "SupplierAccountName",
                            "AddressLine1": _opt("AddressLine1"),
                            "AddressLine2": _opt("AddressLine2"),
                            "TownOrCity": _opt("City"), "StateOrCounty": _opt("County"),
                            "PostcodeOrZip": _opt("PostCode"), "IsoCode": _opt("CountryCode"),
                            "Telephone": _opt("TelephoneNo"), "Email": _opt("EmailAddress"),
                            "VatNumber": _opt("TaxRegistrationCode"),
                            "PaymentDueDays": _opt("PaymentTermsInDays")}},
            "account_codes": {
                "query": "SELECT AccountNumber, AccountCostCentre, AccountDepartment, "
                         "AccountName FROM NLNominalAccount",
                "mapping": {"Code": "AccountNumber", "Name": "AccountName"},
                "where": "AccountCostCentre IS EMPTY AND AccountDepartment IS EMPTY"},
            "tax_codes": {"query": "SELECT Code, Name, TaxRate FROM SYSTaxRate",
                          "mapping": {"Code": "Code", "Name": "Name", "Rate": "TaxRate"}},
            "currencies": {
                "query": "SELECT i.Code AS IsoCode, c.Name, c.CoreCurrencyRate, "
                         "c.IsBaseCurrency FROM SYSCurrency c JOIN SYSCurrencyISOCode i "
                         "ON i.SYSCurrencyISOCodeID = c.SYSCurrencyISOCodeID",
                "mapping": {"Code": "IsoCode", "Name": "Name", "Rate": "CoreCurrencyRate",
                            "IsBase": "IsBaseCurrency"}},
        },
    },
    "xero": {
        "erp": "Xero: the contacts CSV export (Contacts > Export); codes are AccountNumber",
        "source": "files",
        "kinds": {
            "suppliers": {"file": "Contacts.csv", "encoding": "utf-8-sig", "mapping": {
                "Code": "AccountNumber", "Name": ["*ContactName", "ContactName"],
                "AddressLine1": _opt("POAddressLine1", "*POAddressLine1"),
                "AddressLine2": _opt("POAddressLine2"), "TownOrCity": _opt("POCity"),
                "StateOrCounty": _opt("PORegion"), "PostcodeOrZip": _opt("POPostalCode"),
                "Country": _opt("POCountry"), "Telephone": _opt("PhoneNumber"),
                "Email": _opt("EmailAddress"), "BankAccountNumber": _opt("BankAccountNumber"),
                "VatNumber": _opt("TaxNumber"), "PaymentDueDays": _opt("DueDateBillDay")}},
        },
    },
    "business_central": {
        "erp": "Microsoft Dynamics 365 Business Central: lists opened in Excel (Vendors, "
               "Chart of Accounts, Currencies); set base_currency, BC's list has no base row",
        "source": "files",
        "kinds": {
            "suppliers": {"file": "Vendors.xlsx", "where": "Blocked <> 'All'", "mapping": {
                "Code": "No.", "Name": "Name", "AddressLine1": _opt("Address"),
                "AddressLine2": _opt("Address 2"), "TownOrCity": _opt("City"),
                "StateOrCounty": _opt("County"), "PostcodeOrZip": _opt("Post Code"),
                "IsoCode": _opt("Country/Region Code"), "Telephone": _opt("Phone No."),
                "Email": _opt("E-Mail", "Email"), "VatNumber": _opt("VAT Registration No.")}},
            "account_codes": {"file": "Chart of Accounts.xlsx",
                              "where": "\"Account Type\" = 'Posting' AND Blocked NOT IN "
                                       "('Yes', 'True', '1')",
                              "mapping": {"Code": "No.", "Name": "Name"}},
            "currencies": {"file": "Currencies.xlsx", "mapping": {
                "Code": ["ISO Code", "Code"], "Name": "Description",
                "Rate": _opt("Exchange Rate", "Relational Exch. Rate Amount")}},
        },
    },
    "netsuite": {
        "erp": "Oracle NetSuite: saved-search CSV exports (vendors, accounts, currencies), "
               "UTF-8 with a byte order mark; inactive records are left out",
        "source": "files",
        "kinds": {
            "suppliers": {"file": "VendorSearchResults.csv", "encoding": "utf-8-sig",
                          "where": "Inactive IS EMPTY OR Inactive NOT IN ('Yes', 'T')",
                          "mapping": {
                              "Code": ["ID", "Vendor ID", "Entity ID"],
                              "Name": ["Company Name", "Name"],
                              "AddressLine1": _opt("Address 1", "Billing Address 1"),
                              "AddressLine2": _opt("Address 2", "Billing Address 2"),
                              "TownOrCity": _opt("City", "Billing City"),
                              "StateOrCounty": _opt("State/Province", "Billing State/Province"),
                              "PostcodeOrZip": _opt("Zip", "Billing Zip"),
                              "Country": _opt("Country", "Billing Country"),
                              "Telephone": _opt("Phone"), "Email": _opt("Email"),
                              "VatNumber": _opt("Tax Number", "Tax ID")}},
            "account_codes": {"file": "AccountSearchResults.csv", "encoding": "utf-8-sig",
                              "where": "Inactive IS EMPTY OR Inactive NOT IN ('Yes', 'T')",
                              "mapping": {"Code": ["Number", "Account Number"],
                                          "Name": ["Account Name", "Name"]}},
            "currencies": {"file": "CurrencySearchResults.csv", "encoding": "utf-8-sig",
                           "mapping": {"Code": ["ISO Code", "Symbol"], "Name": "Name",
                                       "Rate": _opt("Exchange Rate"),
                                       "IsBase": _opt("Is Base Currency", "Base Currency")}},
        },
    },
}
ALIASES = {"bc": "business_central", "dynamics365bc": "business_central"}


def names() -> tuple[str, ...]:
    """The presets' names."""
    return tuple(PRESETS)


def preset(name: str) -> dict[str, Any]:
    """The preset called ``name`` (an alias allowed); ValueError naming the known ones."""
    found = PRESETS.get(ALIASES.get(name, name))
    if found is None:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return found


def _merge_kind(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """A kind's table: the preset's, then the user's settings over it (mapping by field)."""
    merged = copy.deepcopy(dict(base))
    for key, value in own.items():
        if key == "mapping" and isinstance(value, Mapping):
            merged["mapping"] = {**merged.get("mapping", {}), **value}
        elif key in ("query", "table") and value is not None:
            merged.pop("query", None)
            merged.pop("table", None)
            merged[key] = value
        else:
            merged[key] = value
    return merged


def resolve_source(source: Mapping[str, Any]) -> dict[str, Any]:
    """A raw ``[sources.<name>]`` table with its presets merged in (see the module docstring);
    ValueError for an unknown preset or one made for the other type of source."""
    out = dict(source)
    default = out.pop("preset", None)
    kinds = dict(out.get("kinds") or {})
    if default is not None:
        chosen = preset(str(default))
        _same_type(chosen, out.get("type"), str(default))
        for kind in chosen["kinds"]:
            kinds.setdefault(kind, {})
    for kind, table in list(kinds.items()):
        if not isinstance(table, Mapping):
            continue
        name = table.get("preset", default)
        if name is None:
            continue
        chosen = preset(str(name))
        _same_type(chosen, out.get("type"), str(name))
        own = {k: v for k, v in table.items() if k != "preset"}
        kinds[kind] = {**_merge_kind(chosen["kinds"].get(kind, {}), own), "preset": str(name)}
    if kinds:
        out["kinds"] = kinds
    return out


def _same_type(chosen: Mapping[str, Any], source_type: Any, name: str) -> None:
    if source_type is not None and chosen["source"] != source_type:
        raise ValueError(f"preset {name!r} is for a {chosen['source']} source, not "
                         f"{source_type!r}")
