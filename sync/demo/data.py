"""A realistic sample ERP as a SQLite database, deterministic for a given seed.

The demo, the engine tests and the benchmark share it: suppliers with real-looking names and
addresses in several countries (valid IBANs and VAT numbers for some), ISO currencies, tax codes,
general-ledger accounts, delivery sites and a custom field with values. The tables use the ERP's
own column names; :func:`source_settings` is the ``[sources.<name>]`` table that maps them.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schwifty import IBAN
from stdnum.gb import vat as gb_vat

_STEMS = ("North", "Harbour", "Crown", "Meridian", "Oak", "Silver", "Alder", "Kestrel", "Atlas",
          "Beacon", "Linden", "Granite", "Summit", "Riverside", "Falcon", "Orchard", "Pioneer",
          "Anchor", "Cedar", "Vale", "Thames", "Rhein", "Loire", "Liffey", "Hudson", "Elbe")
_TRADES = ("Logistics", "Office Supplies", "Engineering", "Catering", "Print", "Facilities",
           "IT Services", "Cleaning", "Packaging", "Electrical", "Consulting", "Freight",
           "Security", "Software", "Stationery", "Plant Hire", "Laboratory", "Travel")


@dataclass(frozen=True)
class _Country:
    iso: str
    name: str
    suffix: str
    towns: tuple[str, ...]
    streets: tuple[str, ...]
    phone: str


_COUNTRIES = (
    _Country("GB", "United Kingdom", "Ltd", ("London", "Leeds", "Bristol", "Manchester", "York"),
             ("High Street", "Station Road", "Church Lane", "Mill Road"), "+44 20 7946 {:04d}"),
    _Country("DE", "Germany", "GmbH", ("Berlin", "Hamburg", "Köln", "München", "Düsseldorf"),
             ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße"),
             "+49 30 901820{:02d}"),
    _Country("FR", "France", "SARL", ("Paris", "Lyon", "Nantes", "Lille", "Bordeaux"),
             ("Rue de la République", "Avenue Jean Jaurès", "Rue Victor Hugo"),
             "+33 1 44 55 {:04d}"),
    _Country("NL", "Netherlands", "B.V.", ("Amsterdam", "Utrecht", "Rotterdam", "Den Haag"),
             ("Kerkstraat", "Dorpsstraat", "Molenweg"), "+31 20 555 {:04d}"),
    _Country("IE", "Ireland", "Limited", ("Dublin", "Cork", "Galway", "Limerick"),
             ("Main Street", "Quay Road", "Castle Street"), "+353 1 555 {:04d}"),
    _Country("US", "United States", "Inc.", ("Boston", "Chicago", "Austin", "Denver"),
             ("Main St", "Oak Ave", "Maple Dr", "Market St"), "+1 617 555 {:04d}"),
)

CURRENCIES = (("GBP", "Pound sterling", 1.0, 1), ("EUR", "Euro", 1.1627, 0),
              ("USD", "US dollar", 1.2654, 0), ("CHF", "Swiss franc", 1.1132, 0),
              ("SEK", "Swedish krona", 13.41, 0), ("JPY", "Yen", 190.2, 0))
TAX_CODES = (("T0", "Zero rated", 0.0), ("T1", "Standard rate", 20.0), ("T2", "Exempt", 0.0),
             ("T5", "Reduced rate", 5.0), ("T9", "Outside the scope", 0.0),
             ("EU20", "EU reverse charge", 20.0))
_ACCOUNTS = ("Stationery", "Computer equipment", "Software licences", "Travel", "Subsistence",
             "Postage", "Telephone", "Rent", "Rates", "Light and heat", "Repairs", "Cleaning",
             "Insurance", "Legal fees", "Audit fees", "Consultancy", "Advertising", "Training",
             "Recruitment", "Motor expenses", "Bank charges", "Subscriptions", "Freight")
DEPARTMENTS = ("Finance", "Operations", "Sales", "Marketing", "IT", "HR", "Facilities", "Legal")

SCHEMA = """
CREATE TABLE currencies (code TEXT PRIMARY KEY, name TEXT, rate REAL, is_base INTEGER);
CREATE TABLE tax_codes (code TEXT PRIMARY KEY, description TEXT, rate_percent REAL);
CREATE TABLE gl_accounts (account_no TEXT PRIMARY KEY, description TEXT);
CREATE TABLE sites (site_code TEXT PRIMARY KEY, site_name TEXT, street TEXT, district TEXT,
    town TEXT, postcode TEXT, phone TEXT, country TEXT, iso TEXT);
CREATE TABLE analysis_values (field TEXT, code TEXT, name TEXT, field_type TEXT,
    mandatory INTEGER, PRIMARY KEY (field, code));
CREATE TABLE suppliers (supplier_code TEXT PRIMARY KEY, supplier_name TEXT, address1 TEXT,
    address2 TEXT, town TEXT, county TEXT, postcode TEXT, country TEXT, iso TEXT, phone TEXT,
    email TEXT, bank_name TEXT, iban TEXT, sort_code TEXT, vat_number TEXT, payment_days INTEGER,
    terms TEXT, default_account TEXT);
"""


def _postcode(rng: random.Random, iso: str) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    if iso == "GB":
        return (f"{rng.choice('BLMSY')}{rng.choice(letters)}{rng.randint(1, 28)} "
                f"{rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}")
    if iso == "NL":
        return f"{rng.randint(1000, 9999)} {rng.choice(letters)}{rng.choice(letters)}"
    if iso == "IE":
        return f"D{rng.randint(1, 24):02d} {rng.choice(letters)}{rng.randint(100, 999)}"
    return f"{rng.randint(10000, 99999):05d}"


def _gb_vat(rng: random.Random) -> str:
    """A GB VAT number that passes the mod-97 check (retrying the rare invalid draw)."""
    for _ in range(20):
        digits = [rng.randint(1, 9), *(rng.randint(0, 9) for _ in range(6))]
        total = sum(w * d for w, d in zip(range(8, 1, -1), digits, strict=True))
        number = "GB" + "".join(map(str, digits)) + f"{(-total) % 97:02d}"
        if gb_vat.is_valid(number):
            return number
    raise RuntimeError("could not draw a valid GB VAT number")


def _bank(rng: random.Random, iso: str) -> tuple[str, str, str]:
    """(bank name, account number, sort code or BIC); an IBAN where the country has one."""
    if iso == "GB":
        iban = IBAN.generate("GB", bank_code="NWBK" + f"{rng.randint(100000, 999999)}",
                             account_code=f"{rng.randint(10**7, 10**8 - 1)}")
        return "NatWest", str(iban), f"{iban.bban[4:6]}-{iban.bban[6:8]}-{iban.bban[8:10]}"
    if iso == "DE":
        iban = IBAN.generate("DE", bank_code="37040044",
                             account_code=f"{rng.randint(10**9, 10**10 - 1)}")
        return "Commerzbank", str(iban), "COBADEFFXXX"
    return "", "", ""


def _supplier(rng: random.Random, number: int) -> dict[str, Any]:
    country = _COUNTRIES[number % len(_COUNTRIES)]
    name = f"{rng.choice(_STEMS)} {rng.choice(_TRADES)} {country.suffix}"
    bank, account, sort = _bank(rng, country.iso) if rng.random() < 0.6 else ("", "", "")
    return {
        "supplier_code": f"S{number:05d}", "supplier_name": name,
        "address1": f"{rng.randint(1, 240)} {rng.choice(country.streets)}",
        "address2": rng.choice(("", "", "Unit 4", "Suite 210", "2nd Floor")),
        "town": rng.choice(country.towns), "county": "", "postcode": _postcode(rng, country.iso),
        "country": country.name, "iso": country.iso,
        "phone": country.phone.format(rng.randint(0, 99 if "{:02d}" in country.phone else 9999)),
        "email": f"accounts{number}@{name.split()[0].lower()}-{number}.example",
        "bank_name": bank, "iban": account, "sort_code": sort,
        "vat_number": _gb_vat(rng) if country.iso == "GB" and rng.random() < 0.7 else "",
        "payment_days": rng.choice((14, 30, 30, 45, 60)), "terms": "NetDays",
        "default_account": f"{5000 + 10 * rng.randrange(len(_ACCOUNTS))}",
    }


def suppliers(count: int, *, seed: int = 7, start: int = 1) -> Iterator[dict[str, Any]]:
    """``count`` supplier rows numbered from ``start``, the same for the same seed."""
    rng = random.Random(seed * 1_000_003 + start)
    for number in range(start, start + count):
        yield _supplier(rng, number)


def gl_accounts(count: int = len(_ACCOUNTS)) -> Iterator[tuple[str, str]]:
    """General-ledger accounts 5000, 5010, ...; names repeat with a suffix past the base list."""
    for i in range(count):
        base = _ACCOUNTS[i % len(_ACCOUNTS)]
        yield f"{5000 + 10 * i}", base if i < len(_ACCOUNTS) else f"{base} {i // len(_ACCOUNTS)}"


def tax_codes(count: int = len(TAX_CODES)) -> Iterator[tuple[str, str, float]]:
    """The usual tax codes, then generated ones up to ``count``."""
    yield from TAX_CODES[:count]
    for i in range(len(TAX_CODES), count):
        yield f"X{i:04d}", f"Regional rate {i}", float(i % 25)


def _sites(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for i, country in enumerate(_COUNTRIES[:4]):
        yield (f"SITE{i + 1:02d}", f"{rng.choice(country.towns)} warehouse",
               f"{rng.randint(1, 90)} {rng.choice(country.streets)}", "", rng.choice(country.towns),
               _postcode(rng, country.iso), country.phone.format(rng.randint(0, 99)),
               country.name, country.iso)


def create_erp(path: Path, *, suppliers_count: int = 300, accounts: int = len(_ACCOUNTS),
               taxes: int = len(TAX_CODES), seed: int = 7) -> Path:
    """Create (replacing) the sample ERP at ``path`` and return the path."""
    path.unlink(missing_ok=True)
    rng = random.Random(seed)
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO currencies VALUES (?,?,?,?)", CURRENCIES)
        db.executemany("INSERT INTO tax_codes VALUES (?,?,?)", tax_codes(taxes))
        db.executemany("INSERT INTO gl_accounts VALUES (?,?)", gl_accounts(accounts))
        db.executemany("INSERT INTO sites VALUES (?,?,?,?,?,?,?,?,?)", _sites(rng))
        db.executemany("INSERT INTO analysis_values VALUES (?,?,?,'List',0)",
                       [("Department", f"D{i:02d}", d) for i, d in enumerate(DEPARTMENTS, 1)])
        insert_suppliers(db, suppliers(suppliers_count, seed=seed))
    return path


def table_counts(path: Path) -> dict[str, int]:
    """Rows per table of the sample ERP."""
    with closing(sqlite3.connect(path)) as db:
        return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in ("suppliers", "gl_accounts", "tax_codes", "currencies", "sites",
                          "analysis_values")}


def insert_suppliers(db: sqlite3.Connection, rows: Iterator[dict[str, Any]] | list[Any]) -> None:
    """Insert supplier rows (dicts with the ERP's column names)."""
    db.executemany("INSERT INTO suppliers VALUES (:supplier_code, :supplier_name, :address1, "
                   ":address2, :town, :county, :postcode, :country, :iso, :phone, :email, "
                   ":bank_name, :iban, :sort_code, :vat_number, :payment_days, :terms, "
                   ":default_account)", rows)


_SUPPLIERS_QUERY = (
    "SELECT supplier_code AS Code, supplier_name AS Name, address1, address2, town, county, "
    "postcode, country, iso, phone, email, bank_name, iban, sort_code, vat_number, "
    "payment_days, terms, CASE WHEN default_account IS NULL THEN NULL ELSE "
    "json_array(json_object('FieldCode', 'AccountCode', 'Value', default_account)) END "
    "AS AnalysisDefaults FROM suppliers ORDER BY supplier_code")

_SUPPLIER_MAPPING = {
    "AddressLine1": "address1", "AddressLine2": "address2", "TownOrCity": "town",
    "StateOrCounty": "county", "PostcodeOrZip": "postcode", "Country": "country",
    "IsoCode": "iso", "Telephone": "phone", "Email": "email", "BankName": "bank_name",
    "BankAccountNumber": "iban", "BankSortCode": "sort_code", "VatNumber": "vat_number",
    "PaymentDueDays": "payment_days", "PaymentTermsType": "terms",
}


def source_settings(db_path: Path) -> dict[str, Any]:
    """The ``[sources.erp]`` table reading this ERP: SQL aliases for some kinds, mappings
    for others."""
    return {
        "type": "sql", "url": f"sqlite:///{db_path}",
        "kinds": {
            "currencies": {"query": "SELECT code AS Code, name AS Name, rate AS Rate, "
                                    "is_base AS IsBase FROM currencies"},
            "tax_codes": {"table": "tax_codes",
                          "mapping": {"Name": "description", "Rate": "rate_percent"}},
            "account_codes": {"query": "SELECT account_no AS Code, description AS Name "
                                       "FROM gl_accounts"},
            "delivery_sites": {"table": "sites", "mapping": {
                "Code": "site_code", "Name": "site_name", "Address1": "street",
                "Address2": "district", "TownOrCity": "town", "Postcode": "postcode",
                "Telephone": "phone", "Country": "country", "IsoCode": "iso"}},
            "custom_fields": {"query": "SELECT field AS Field, code AS Code, name AS Name, "
                                       "field_type AS Type, mandatory AS Mandatory "
                                       "FROM analysis_values"},
            "suppliers": {"query": _SUPPLIERS_QUERY, "mapping": _SUPPLIER_MAPPING},
        },
    }


@dataclass(frozen=True)
class Change:
    """One change made to the sample ERP, described for the demo's narration."""

    table: str
    key: str
    what: str


def apply_changes(path: Path, *, seed: int = 7) -> list[Change]:
    """Edit three suppliers, add one, remove one and add one invalid row; return what changed."""
    rng = random.Random(seed + 1)
    with closing(sqlite3.connect(path)) as db, db:
        codes = [r[0] for r in db.execute("SELECT supplier_code FROM suppliers ORDER BY 1")]
        edited, removed = rng.sample(codes[:-1], 3), codes[-1]
        changes = [_edit_supplier(db, code, i) for i, code in enumerate(edited)]
        newest = _supplier(rng, len(codes) + 1)
        insert_suppliers(db, [newest])
        changes.append(Change("suppliers", newest["supplier_code"], "new supplier"))
        db.execute("DELETE FROM suppliers WHERE supplier_code = ?", (removed,))
        changes.append(Change("suppliers", removed, "removed from the ERP"))
        bad = _supplier(rng, len(codes) + 2) | {"iso": "XX", "country": "Atlantis"}
        insert_suppliers(db, [bad])
        changes.append(Change("suppliers", bad["supplier_code"], "new, with ISO country 'XX'"))
    return changes


def _edit_supplier(db: sqlite3.Connection, code: str, i: int) -> Change:
    column, value = (("phone", f"+44 113 496 {100 + i:04d}"), ("address1", "1 New Wharf"),
                     ("payment_days", 21))[i % 3]
    db.execute(f"UPDATE suppliers SET {column} = ? WHERE supplier_code = ?", (value, code))
    return Change("suppliers", code, f"{column} -> {value}")


def empty_suppliers(path: Path) -> int:
    """Move every supplier aside (an ERP export that came back empty); return how many."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE IF NOT EXISTS suppliers_aside AS SELECT * FROM suppliers")
        count = int(db.execute("SELECT count(*) FROM suppliers").fetchone()[0])
        db.execute("DELETE FROM suppliers")
    return count


def restore_suppliers(path: Path) -> None:
    """Undo :func:`empty_suppliers`."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO suppliers SELECT * FROM suppliers_aside")
        db.execute("DROP TABLE suppliers_aside")
