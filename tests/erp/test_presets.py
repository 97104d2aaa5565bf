"""Each preset over a sample in its ERP's real column layout (tests/erp/samples)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from sync.foundation.config import parse_settings
from sync.foundation.errors import ConfigError
from tests.erp.support import SAMPLES, codes, read_kind, reasons


def sage50(kind: str, **extra: object) -> object:
    """One kind of the Sage 50 sample through preset sage50."""
    return read_kind({"type": "files", "directory": str(SAMPLES / "sage50"), "preset": "sage50"},
                     kind, **extra)


def test_sage50_suppliers_read_in_windows_1252_with_the_trailer_skipped() -> None:
    """The Sage 50 supplier report (cp1252, CRLF, a trailer of commas) maps every column;
    accents survive, the trailer is skipped and counted, the bad rows are named."""
    norm = sage50("suppliers", validation={"bank": "reject"})
    assert codes(norm) == ["ABB001", "CAF002", "KEN005", "MUL006"]
    assert norm.blank == 1
    frame = norm.frame
    assert frame.loc["CAF002", "Name"] == "Café Lumière SARL"
    assert frame.loc["MUL006", "AddressLine1"] == "Königstraße 1"
    assert frame.loc["ABB001", "TownOrCity"] == "Leeds"
    assert frame.loc["ABB001", "BankAccountNumber"] == "GB33BUKB20201555555555"  # IBAN first
    assert frame.loc["MUL006", "BankSortCode"] == "DEUTDEFF"  # no sort code: the BIC
    assert frame.loc["KEN005", "PaymentDueDays"] == 30
    assert reasons(norm) == {"bad_iban": {"BRO003"}, "duplicate_key": {"DUP01", "dup01"},
                             "too_long": {"LON007"}, "bad_iso_country": {"ISO008"}}


def test_sage50_nominal_tax_and_currency_reports() -> None:
    """Nominal codes keep their leading zeros; tax rates are percents; base_currency marks GBP."""
    assert codes(sage50("account_codes")) == ["0030", "4000", "5000", "7502", "7900"]
    tax = sage50("tax_codes")
    assert dict(zip(tax.frame.index, tax.frame["Rate"], strict=True))["T1"] == 20.0
    source = {"type": "files", "directory": str(SAMPLES / "sage50"), "preset": "sage50",
              "kinds": {"currencies": {"base_currency": "GBP"}}}
    currencies = read_kind(source, "currencies")
    assert currencies.rejected == ()
    assert currencies.frame.loc["GBP", "IsBase"] is True


def test_sage50_read_as_utf8_names_the_encoding_to_set() -> None:
    """Overriding the preset's encoding with UTF-8 fails naming the line and cp1252."""
    source = {"type": "files", "directory": str(SAMPLES / "sage50"), "preset": "sage50",
              "kinds": {"suppliers": {"encoding": "utf-8"}}}
    with pytest.raises(ConfigError, match=r'line 3 .*encoding = "cp1252"'):
        read_kind(source, "suppliers")


def test_xero_contacts_export() -> None:
    """Xero's contacts CSV (UTF-8 with a BOM): AccountNumber is the code, a contact without
    one is rejected as missing_code, macrons survive."""
    norm = read_kind({"type": "files", "directory": str(SAMPLES / "xero"), "preset": "xero"},
                     "suppliers")
    assert codes(norm) == ["HF100", "OT200"]
    assert norm.frame.loc["OT200", "TownOrCity"] == "Ōtaki"
    assert norm.frame.loc["HF100", "Country"] == "United Kingdom"
    assert reasons(norm) == {"missing_code": {"row 3"}}


def test_business_central_excel_lists() -> None:
    """BC's Vendors, Chart of Accounts and Currencies workbooks: blocked vendors and non-posting
    or blocked accounts are filtered out; base_currency adds the base the list leaves out."""
    source = {"type": "files", "directory": str(SAMPLES / "business_central"),
              "preset": "business_central", "kinds": {"currencies": {"base_currency": "GBP"}}}
    vendors = read_kind(source, "suppliers")
    assert codes(vendors) == ["V00010", "V00020"]
    assert vendors.filtered == 1
    accounts = read_kind(source, "account_codes")
    assert codes(accounts) == ["1110", "6110"]
    assert accounts.filtered == 3
    currencies = read_kind(source, "currencies")
    assert codes(currencies) == ["EUR", "GBP", "USD"]
    assert currencies.rejected == ()


def test_netsuite_saved_search_exports() -> None:
    """NetSuite saved searches: inactive records are left out, the base currency is flagged."""
    source = {"type": "files", "directory": str(SAMPLES / "netsuite"), "preset": "netsuite"}
    vendors = read_kind(source, "suppliers")
    assert codes(vendors) == ["VEN-0001", "VEN-0002"]
    assert vendors.frame.loc["VEN-0002", "Name"] == "Contoso Ltd"
    assert codes(read_kind(source, "account_codes")) == ["6000", "6100"]
    currencies = read_kind(source, "currencies")
    assert currencies.frame.loc["GBP", "IsBase"] is True
    assert currencies.rejected == ()


SAGE200_SCHEMA = (
    "CREATE TABLE SYSCountryCode (SYSCountryCodeID INTEGER PRIMARY KEY, Code TEXT, Name TEXT)",
    "CREATE TABLE PLSupplierAccount (PLSupplierAccountID INTEGER PRIMARY KEY, "
    "SupplierAccountNumber VARCHAR(8), SupplierAccountName VARCHAR(60), "
    "SupplierAccountShortName VARCHAR(8), TaxRegistrationCode VARCHAR(30), "
    "PaymentTermsInDays INTEGER, AccountIsOnHold INTEGER, SYSCountryCodeID INTEGER)",
    "CREATE TABLE PLSupplierLocation (PLSupplierLocationID INTEGER PRIMARY KEY, "
    "PLSupplierAccountID INTEGER, IsDefault INTEGER, AddressLine1 TEXT, AddressLine2 TEXT, "
    "City TEXT, County TEXT, PostCode TEXT, TelephoneNo TEXT, EmailAddress TEXT)",
    "CREATE TABLE NLNominalAccount (NLNominalAccountID INTEGER PRIMARY KEY, "
    "AccountNumber VARCHAR(8), AccountCostCentre VARCHAR(3), AccountDepartment VARCHAR(3), "
    "AccountName VARCHAR(60))",
    "CREATE TABLE SYSTaxRate (SYSTaxRateID INTEGER PRIMARY KEY, Code INTEGER, Name TEXT, "
    "TaxRate NUMERIC)",
    "CREATE TABLE SYSCurrencyISOCode (SYSCurrencyISOCodeID INTEGER PRIMARY KEY, Code TEXT)",
    "CREATE TABLE SYSCurrency (SYSCurrencyID INTEGER PRIMARY KEY, SYSCurrencyISOCodeID "
    "INTEGER, Name TEXT, CoreCurrencyRate NUMERIC, IsBaseCurrency INTEGER)",
    "INSERT INTO SYSCountryCode VALUES (1, 'GB', 'United Kingdom'), (2, 'IE', 'Ireland')",
    "INSERT INTO PLSupplierAccount VALUES (1, 'ACME01', 'Acme Components Ltd', 'ACME', "
    "'GB980780684', 30, 0, 1), (2, 'DUB02', 'Dublin Office Supplies', 'DUBOFF', NULL, 45, 1, 2)",
    "INSERT INTO PLSupplierLocation VALUES (1, 1, 1, '1 Forge Lane', NULL, 'Sheffield', "
    "'South Yorkshire', 'S1 2AB', '0114 496 0000', 'ap@acme.example'), (2, 1, 0, 'Old depot', "
    "NULL, 'Rotherham', NULL, 'S60 1AA', NULL, NULL), (3, 2, 1, '5 Dame St', NULL, 'Dublin', "
    "NULL, 'D02 X285', NULL, NULL)",
    "INSERT INTO NLNominalAccount VALUES (1, '40010', '', '', 'Sales - Widgets'), "
    "(2, '40010', 'NTH', 'SAL', 'Sales - Widgets North'), (3, '75010', '', '', 'Stationery')",
    "INSERT INTO SYSTaxRate VALUES (1, 0, 'Zero rated', 0), (2, 1, 'Standard rate', 20), "
    "(3, 5, 'Reduced rate', 5)",
    "INSERT INTO SYSCurrencyISOCode VALUES (1, 'GBP'), (2, 'EUR')",
    "INSERT INTO SYSCurrency VALUES (0, 1, 'Pound Sterling', 1, 1), (1, 2, 'Euro', 1.17, 0)",
)


def test_sage200_schema(tmp_path: Path) -> None:
    """The sage200 preset reads suppliers with their default location and country, nominal
    accounts without cost centre or department, tax rates and currencies."""
    db = tmp_path / "sage200.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        for statement in SAGE200_SCHEMA:
            conn.execute(statement)
    source = {"type": "sql", "url": f"sqlite:///{db}", "preset": "sage200"}
    suppliers = read_kind(source, "suppliers")
    assert codes(suppliers) == ["ACME01", "DUB02"]
    assert suppliers.frame.loc["ACME01", "TownOrCity"] == "Sheffield"
    assert suppliers.frame.loc["DUB02", "IsoCode"] == "IE"
    assert codes(read_kind(source, "account_codes")) == ["40010", "75010"]
    assert codes(read_kind(source, "tax_codes")) == ["0", "1", "5"]
    currencies = read_kind(source, "currencies")
    assert currencies.frame.loc["GBP", "IsBase"] is True


def test_unknown_preset_or_wrong_source_type_names_the_key() -> None:
    """A preset that does not exist, or is for the other type of source, is exit 2 naming it."""
    with pytest.raises(ConfigError) as caught:
        parse_settings({"sources": {"erp": {"type": "files", "directory": "/x",
                                            "preset": "sage2000"}}})
    assert caught.value.key == "sources.erp.preset"
    with pytest.raises(ConfigError, match="sql source"):
        parse_settings({"sources": {"erp": {"type": "files", "directory": "/x",
                                            "preset": "sage200"}}})


def test_own_settings_win_over_the_preset() -> None:
    """A mapping entry or a file written beside the preset replaces the preset's."""
    parsed = parse_settings({"sources": {"erp": {
        "type": "files", "directory": "/x", "preset": "sage50",
        "kinds": {"suppliers": {"file": "SUPP.CSV", "mapping": {"Name": "Account Name"}}}}}})
    kind = parsed.sources["erp"].kinds["suppliers"]
    assert kind.file == "SUPP.CSV"
    assert kind.mapping["Name"] == "Account Name"
    assert kind.mapping["Code"] == ["A/C", "Account Reference"]
    assert kind.encoding == "cp1252"


def test_company_params_are_bound_into_queries(tmp_path: Path) -> None:
    """[companies.params] binds the ERP's own company number into a query (never formats it),
    beside :company and :company_id; the reserved names are refused."""
    from connectors.base import CompanyRef
    from connectors.factory import build_source

    db = tmp_path / "erp.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE gl (company_no INTEGER, code TEXT, name TEXT)")
        conn.executemany("INSERT INTO gl VALUES (?, ?, ?)",
                         [(1, "4000", "Sales"), (2, "4000", "Other sales"), (1, "5000", "Cost")])
    parsed = parse_settings({
        "sources": {"erp": {"type": "sql", "url": f"sqlite:///{db}", "kinds": {
            "account_codes": {"query": "SELECT code AS Code, name AS Name FROM gl "
                                       "WHERE company_no = :erp_company"}}}},
        "companies": [{"name": "uk", "company_id": "c1", "source": "erp",
                       "params": {"erp_company": 1}}]})
    company = parsed.companies[0]
    source = build_source("erp", parsed.sources["erp"])
    frame = source.read("account_codes", CompanyRef(company.name, company.company_id,
                                                     company.params)).frame
    source.close()
    assert sorted(frame["Code"]) == ["4000", "5000"]
    with pytest.raises(ConfigError) as caught:
        parse_settings({"companies": [{"name": "uk", "company_id": "c1",
                                       "params": {"company": 3}}]})
    assert caught.value.key == "companies.0.params"


def test_csv_with_a_byte_order_mark_reads_its_first_column() -> None:
    """A UTF-8 export with a BOM read with the default encoding still finds its first column."""
    norm = read_kind({"type": "files", "directory": str(SAMPLES / "netsuite"), "kinds": {
        "suppliers": {"file": "VendorSearchResults.csv",
                      "mapping": {"Code": "Internal ID", "Name": "Company Name"}}}}, "suppliers")
    assert codes(norm) == ["1201", "1202", "1203"]


def test_sqlite_text_not_utf8_quarantined_or_decoded(tmp_path: Path) -> None:
    """Windows-1252 text in a SQLite ERP: encoding = "cp1252" reads it; encoding_errors =
    "quarantine" sets only that row aside as bad_encoding."""
    db = tmp_path / "erp.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE sup (code TEXT, name TEXT)")
        conn.execute("INSERT INTO sup VALUES ('A1', 'Abbey'), ('B2', CAST(? AS TEXT))",
                     ("Café".encode("cp1252"),))

    def source(**kind: object) -> dict[str, object]:
        return {"type": "sql", "url": f"sqlite:///{db}", "kinds": {"suppliers": {
            "query": "SELECT code AS Code, name AS Name FROM sup", **kind}}}

    decoded = read_kind(source(encoding="cp1252"), "suppliers")
    assert decoded.frame.loc["B2", "Name"] == "Café"
    kept = read_kind(source(encoding_errors="quarantine"), "suppliers")
    assert codes(kept) == ["A1"]
    assert reasons(kept) == {"bad_encoding": {"B2"}}
