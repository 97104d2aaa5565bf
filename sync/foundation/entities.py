"""The six reference kinds as data: key, fields, API names, shape and dependency order.

Adding a kind is a few lines here: a kind of the ``records`` shape gets its list, refresh, edit
and delete routes in ``connectors.icompleat.routes`` from its API names. Nothing else names a
kind's fields or its API names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

FieldType = Literal["str", "int", "float", "bool", "json"]
# Named checks applied by normalisation; see sync.reference.rules.normalise for each rule.
Check = Literal["iso_country", "currency", "email", "vat", "iban", "sort_code_or_bic", "rate"]

CODE_MAX = 20
NAME_MAX = 100
TEXT_MAX = 100
# Records per write call (refresh / append chunk, custom field value list): the contract's limit.
WRITE_CHUNK_SIZE = 100
# How a kind's records live in iCompleat: ``records`` are one paged list with refresh, edit and
# delete by code; ``field_values`` are list values grouped under custom fields that iCompleat
# keys by an Id (definitions first, then each field's complete value list).
Shape = Literal["records", "field_values"]


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field: its iCompleat name, type, length limit and checks.

    ``sent`` is False for fields read from the ERP only to be checked (a VAT number), which
    iCompleat's record does not carry; they never reach the API, the diff or the digest.
    """

    name: str
    type: FieldType = "str"
    max_length: int | None = TEXT_MAX
    required: bool = False
    check: Check | None = None
    sent: bool = True


@dataclass(frozen=True)
class Kind:
    """One reference kind, with its API names written once.

    ``api`` is its route prefix in the routes table (the API's plural segment), ``api_singular``
    the singular segment of its one-record routes, ``payload`` / ``singular_payload`` the body
    names of lists and single records, ``shape`` how iCompleat holds it.
    """

    name: str
    label: str
    api: str
    api_singular: str
    payload: str
    singular_payload: str
    key: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    order: int
    shape: Shape = "records"

    @property
    def field_values(self) -> bool:
        """True for list values grouped under custom fields (keyed Field + Code)."""
        return self.shape == "field_values"

    @property
    def field_names(self) -> tuple[str, ...]:
        """All canonical column names, key first."""
        return tuple(f.name for f in self.fields)

    @property
    def sent_fields(self) -> tuple[str, ...]:
        """The fields that make up the remote record (and its digest)."""
        return tuple(f.name for f in self.fields if f.sent)

    @property
    def value_fields(self) -> tuple[str, ...]:
        """The sent fields that are not part of the key: what an edit can change."""
        return tuple(f for f in self.sent_fields if f not in self.key)

    def field(self, name: str) -> FieldSpec:
        """The spec of field ``name``; KeyError if the kind has no such field."""
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no field {name!r}")

    def route(self, operation: str) -> str:
        """The routes-table name of ``operation`` (list, post, edit, delete) for this kind."""
        return f"{self.api}.{operation}"


def _code() -> FieldSpec:
    return FieldSpec("Code", max_length=CODE_MAX, required=True)


def _name() -> FieldSpec:
    return FieldSpec("Name", max_length=NAME_MAX, required=True)


def _texts(*names: str) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec(n) for n in names)


KINDS_LIST: tuple[Kind, ...] = (
    Kind("currencies", "Currencies",
         api="currencycodes", api_singular="currencycode",
         payload="CurrencyCodes", singular_payload="CurrencyCode",
         key=("Code",),
         fields=(FieldSpec("Code", max_length=3, required=True, check="currency"), _name(),
                 FieldSpec("Rate", "float", None, required=True, check="rate"),
                 FieldSpec("IsBase", "bool", None)),
         order=10),
    Kind("tax_codes", "Tax codes",
         api="taxcodes", api_singular="taxcode",
         payload="TaxCodes", singular_payload="TaxCode",
         key=("Code",),
         fields=(_code(), _name(), FieldSpec("Rate", "float", None, required=True, check="rate")),
         order=10),
    Kind("account_codes", "Account codes",
         api="accountcodes", api_singular="accountcode",
         payload="AccountCodes", singular_payload="AccountCode",
         key=("Code",),
         fields=(_code(), _name()),
         order=20),
    Kind("delivery_sites", "Delivery sites",
         api="deliverysites", api_singular="deliverysite",
         payload="DeliverySites", singular_payload="DeliverySite",
         key=("Code",),
         fields=(_code(), _name(),
                 *_texts("Address1", "Address2", "TownOrCity", "Postcode", "Telephone",
                         "Country"),
                 FieldSpec("IsoCode", max_length=2, check="iso_country")),
         order=20),
    Kind("custom_fields", "Custom fields",
         api="customfields", api_singular="customfield",
         payload="CustomFields", singular_payload="CustomField",
         key=("Field", "Code"),
         fields=(FieldSpec("Field", max_length=NAME_MAX, required=True), _code(), _name(),
                 FieldSpec("Type", max_length=20), FieldSpec("Mandatory", "bool", None)),
         order=30, shape="field_values"),
    Kind("suppliers", "Suppliers",
         api="suppliers", api_singular="supplier",
         payload="Suppliers", singular_payload="Supplier",
         key=("Code",),
         fields=(_code(), _name(),
                 *_texts("AddressLine1", "AddressLine2", "TownOrCity", "StateOrCounty",
                         "PostcodeOrZip", "Country"),
                 FieldSpec("IsoCode", max_length=2, check="iso_country"),
                 FieldSpec("Telephone"), FieldSpec("Email", check="email"),
                 FieldSpec("BankName"), FieldSpec("BankAccountNumber", check="iban"),
                 FieldSpec("BankSortCode", check="sort_code_or_bic"),
                 FieldSpec("PaymentDueDays", "int", None),
                 FieldSpec("PaymentTermsType", max_length=20),
                 FieldSpec("AnalysisDefaults", "json", None),
                 FieldSpec("VatNumber", max_length=30, check="vat", sent=False)),
         order=40),
)

KINDS: dict[str, Kind] = {k.name: k for k in KINDS_LIST}
KIND_NAMES: tuple[str, ...] = tuple(KINDS)

# Custom field values are grouped under their field; the field definition carries these.
CUSTOM_FIELD_DEFAULT_TYPE = "List"


def get_kind(name: str) -> Kind:
    """The kind called ``name``; ValueError naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}; known kinds: {', '.join(KIND_NAMES)}") from None


def chunked(keys: Sequence[str], size: int = WRITE_CHUNK_SIZE) -> list[list[str]]:
    """``keys`` in consecutive chunks of ``size``; no chunk for no keys."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    return [list(keys[i:i + size]) for i in range(0, len(keys), size)]


def in_dependency_order(names: Iterable[str]) -> list[str]:
    """``names`` sorted so that a kind comes after every kind it may refer to (stable)."""
    index = {n: i for i, n in enumerate(KIND_NAMES)}
    return sorted(names, key=lambda n: (get_kind(n).order, index[n]))

# What each check means, and where ERP data usually goes: shown by `icsync fields` and in
# docs/fields.md (both generated from this registry; a test keeps every entry a real field).
CHECK_NOTES: dict[str, str] = {
    "iso_country": "ISO 3166 two-letter country code, upper-cased; unknown codes are rejected",
    "currency": "ISO 4217 three-letter code, upper-cased; unknown codes are rejected",
    "email": "an email address; a malformed one is a warning, never a rejection",
    "vat": "checked with python-stdnum (the IsoCode's country when it has no prefix); "
           "[validation] vat = reject, warn or off",
    "iban": "checked as an IBAN when it looks like one (two letters, two digits, 11+ more); "
            "[validation] bank",
    "sort_code_or_bic": "a UK sort code (6 digits, dashes allowed) or a valid BIC; "
                        "[validation] bank",
    "rate": "a number, zero or more",
}
FIELD_NOTES: dict[tuple[str, str], str] = {
    ("currencies", "Code"): "the currency's ISO code (GBP), not the ERP's own number",
    ("currencies", "Rate"): "exchange rate to the base currency; the base has 1",
    ("currencies", "IsBase"): "exactly one currency is the base; without a base flag in the "
                              "ERP set base_currency = \"GBP\" on the kind",
    ("tax_codes", "Rate"): "percent: 20 for 20% (not 0.2)",
    ("account_codes", "Code"): "the nominal / G/L account number",
    ("custom_fields", "Field"): "the custom field's name; one source row per list value",
    ("custom_fields", "Type"): "taken from the field's first row (default List)",
    ("custom_fields", "Mandatory"): "taken from the field's first row (default false)",
    ("suppliers", "Code"): "the supplier account reference (A/C, Vendor No.)",
    ("suppliers", "Country"): "the country's name as text; the ISO code goes in IsoCode",
    ("suppliers", "BankAccountNumber"): "IBAN, else the local account number (map a fallback: "
                                        "[\"IBAN\", \"Account Number\"])",
    ("suppliers", "BankSortCode"): "UK sort code, or the BIC/SWIFT code where there is none",
    ("suppliers", "PaymentDueDays"): "whole days (30), with PaymentTermsType",
    ("suppliers", "PaymentTermsType"): "NetDays is the value iCompleat is known to use",
    ("suppliers", "AnalysisDefaults"): "JSON list of {FieldCode, Value}, e.g. a default "
                                       "AccountCode",
    ("suppliers", "VatNumber"): "validated only, NEVER sent: iCompleat's supplier record has "
                                "no VAT field",
    ("delivery_sites", "Address1"): "note the names differ from a supplier's (AddressLine1)",
}
