"""Writes the sample exports under this folder, in each ERP's own column layout and encoding.

Run once by hand (``python3 -m uv run python tests/erp/samples/make_samples.py``); the files
are committed and the tests read them as a user's exports would be read. Kept so the samples'
provenance is plain: Sage 50 report CSVs in Windows-1252 with CRLF line ends and a trailer line
of commas, a Xero contacts export and NetSuite saved-search exports in UTF-8 with a byte order
mark, Business Central lists opened in Excel (.xlsx), and a Sage 200-style SQL schema.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).parent

SAGE50_SUPPLIER_HEADER = [
    "A/C", "Name", "Address Line 1", "Address Line 2", "Address Line 3", "Address Line 4",
    "Address Line 5", "Contact Name", "Telephone", "Fax", "Analysis 1", "Analysis 2",
    "Analysis 3", "Department", "VAT Number", "M.T.D.", "Y.T.D.", "Prior Y.T.D.",
    "Credit Limit", "Trading Terms Text", "Settlement Due Days", "Sett. Discount (%)",
    "Default Nominal Code", "Default Tax Code", "E-mail", "Payment Due Days", "Bank Name",
    "Bank Account Number", "Bank Sort Code", "IBAN", "BIC", "Country Code", "Account Status",
]
# A/C, Name, address 1-5, contact, phone, VAT, e-mail, due days, bank name, account, sort
# code, IBAN, BIC, country.
SAGE50_SUPPLIERS = [
    ("ABB001", "Abbey Stationers Ltd", "12 High Street", "", "Leeds", "West Yorkshire",
     "LS1 4AB", "Joan Abbey", "0113 496 0000", "GB980780684", "accounts@abbey.example",
     "30", "Barclays", "55555555", "20-20-15", "GB33BUKB20201555555555", "", "GB"),
    ("CAF002", "Café Lumière SARL", "3 rue de l'Église", "", "Lyon", "", "69002",
     "Hélène Roux", "+33 4 72 00 00 00", "FR40303265045", "compta@lumiere.example", "45",
     "Société Générale", "", "", "FR1420041010050500013M02606", "SOGEFRPP", "FR"),
    ("BRO003", "Brown & Sons", "Unit 4 Mill Lane", "", "Bristol", "", "BS1 5TR", "",
     "0117 496 0001", "", "", "30", "Lloyds", "", "", "GB00BUKB20201555555555", "", "GB"),
    ("DUP01", "Duplex Printing", "1 Print Row", "", "Derby", "", "DE1 1AA", "", "", "", "",
     "14", "", "", "", "", "", "GB"),
    ("KEN005", "Kent Packaging Ltd", "Dock Road", "Chatham", "Kent", "", "ME4 4TZ",
     "Ken Ellis", "01634 496000", "", "sales@kentpack.example", "30", "", "", "", "", "",
     "GB"),
    ("MUL006", "Müller Maschinenbau GmbH", "Königstraße 1", "", "Stuttgart", "", "70173",
     "Jürgen Müller", "+49 711 000000", "DE136695976", "", "60", "Deutsche Bank", "", "",
     "DE89370400440532013000", "DEUTDEFF", "DE"),
    ("dup01 ", "Duplex Printing (old)", "", "", "Derby", "", "", "", "", "", "", "", "", "",
     "", "", "", "GB"),
    ("LON007", "L" + "o" * 120 + "ng Name Trading", "", "", "London", "", "EC1A 1BB", "", "",
     "", "", "30", "", "", "", "", "", "GB"),
    ("ISO008", "Isola Imports", "", "", "Nowhere", "", "", "", "", "", "", "30", "", "", "",
     "", "", "XX"),
]


def sage50_supplier_rows() -> list[list[str]]:
    """The supplier report's rows in its column order (blank where the sample has nothing)."""
    out = []
    for (ac, name, a1, a2, a3, a4, a5, contact, phone, vat, email, due, bank, account, sort,
         iban, bic, country) in SAGE50_SUPPLIERS:
        row = dict.fromkeys(SAGE50_SUPPLIER_HEADER, "")
        row.update({"A/C": ac, "Name": name, "Address Line 1": a1, "Address Line 2": a2,
                    "Address Line 3": a3, "Address Line 4": a4, "Address Line 5": a5,
                    "Contact Name": contact, "Telephone": phone, "VAT Number": vat,
                    "E-mail": email, "Payment Due Days": due, "Bank Name": bank,
                    "Bank Account Number": account, "Bank Sort Code": sort, "IBAN": iban,
                    "BIC": bic, "Country Code": country, "Credit Limit": "5000.00",
                    "M.T.D.": "0.00", "Y.T.D.": "1250.40", "Prior Y.T.D.": "980.00",
                    "Default Nominal Code": "5000", "Default Tax Code": "T1",
                    "Account Status": "0", "Department": "0", "Settlement Due Days": "0",
                    "Sett. Discount (%)": "0.00"})
        out.append([row[h] for h in SAGE50_SUPPLIER_HEADER])
    return out


def write_windows_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Windows-1252, CRLF, every field quoted as Sage writes text, and a trailer of commas."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    buffer.write("," * (len(header) - 1) + "\r\n")
    path.write_bytes(buffer.getvalue().encode("cp1252"))


def write_bom_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """UTF-8 with a byte order mark, CRLF (what Xero and NetSuite exports look like)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))


def write_xlsx(path: Path, sheet: str, header: list[str], rows: list[list[object]]) -> None:
    """One sheet, a header row, values typed as Excel holds them."""
    book = Workbook()
    ws = book.active
    ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append(row)
    book.save(path)


def sage50() -> None:
    folder = HERE / "sage50"
    folder.mkdir(exist_ok=True)
    write_windows_csv(folder / "suppliers.csv", SAGE50_SUPPLIER_HEADER, sage50_supplier_rows())
    write_windows_csv(folder / "nominal.csv", ["N/C", "Name", "Balance"], [
        ["0030", "Office Equipment & Fixtures", "1200.00"], ["4000", "Sales Type A", "0.00"],
        ["5000", "Materials Purchased", "340.10"], ["7502", "Office Stationery", "85.00"],
        ["7900", "Bank Charges & Interest", "12.50"]])
    write_windows_csv(folder / "tax_codes.csv", ["Tax Code", "Rate", "Description"], [
        ["T0", "0.00", "Zero rated"], ["T1", "20.00", "Standard rate"],
        ["T5", "5.00", "Lower rate"], ["T9", "0.00", "Transactions not involving VAT"]])
    write_windows_csv(folder / "currencies.csv", ["Number", "Name", "Code", "Symbol",
                                                   "Exchange Rate"], [
        ["1", "Pound Sterling", "GBP", "£", "1.000000"],
        ["2", "Euro", "EUR", "€", "1.170000"], ["3", "US Dollar", "USD", "$", "1.270000"]])


def xero() -> None:
    folder = HERE / "xero"
    folder.mkdir(exist_ok=True)
    header = ["ContactName", "AccountNumber", "EmailAddress", "FirstName", "LastName",
              "POAttentionTo", "POAddressLine1", "POAddressLine2", "POAddressLine3",
              "POAddressLine4", "POCity", "PORegion", "POPostalCode", "POCountry",
              "PhoneNumber", "FaxNumber", "MobileNumber", "BankAccountName", "BankAccountNumber",
              "TaxNumber", "DueDateBillDay", "DueDateBillTerm", "Website"]
    rows = [
        ["Harbour Freight Ltd", "HF100", "ap@harbour.example", "Sam", "Reed", "", "7 Quay St",
         "", "", "", "Bristol", "", "BS1 4QA", "United Kingdom", "0117 496 0101", "", "", "",
         "GB33BUKB20201555555555", "GB980780684", "30", "DAYSAFTERBILLDATE", ""],
        ["Ōtaki Coffee Roasters", "OT200", "hello@otaki.example", "", "", "", "1 Main Hwy",
         "", "", "", "Ōtaki", "Kāpiti", "5512", "New Zealand", "", "", "", "", "", "", "20",
         "DAYSAFTERBILLDATE", ""],
        ["Walk-in customer", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "",
         "", "", "", "", "", ""],
    ]
    write_bom_csv(folder / "Contacts.csv", header, rows)


def business_central() -> None:
    folder = HERE / "business_central"
    folder.mkdir(exist_ok=True)
    write_xlsx(folder / "Vendors.xlsx", "Vendors", [
        "No.", "Name", "Address", "Address 2", "City", "County", "Post Code",
        "Country/Region Code", "Phone No.", "E-Mail", "VAT Registration No.", "Blocked",
        "Payment Terms Code", "Balance (LCY)"], [
        ["V00010", "Fabrikam, Inc.", "Walter Street 1", "", "Atlanta", "GA", "31772", "US",
         "+1 404 555 0100", "ap@fabrikam.example", "", " ", "30 DAYS", 1520.5],
        ["V00020", "First Up Consultants", "100 Day Drive", "", "London", "", "EC2V 6EE", "GB",
         "", "", "GB980780684", " ", "14 DAYS", 0],
        ["V00030", "Closed Vendor Ltd", "", "", "Leeds", "", "", "GB", "", "", "", "All",
         "", 0],
    ])
    write_xlsx(folder / "Chart of Accounts.xlsx", "Chart of Accounts", [
        "No.", "Name", "Income/Balance", "Account Type", "Direct Posting", "Blocked",
        "Balance"], [
        ["1000", "BALANCE SHEET", "Balance Sheet", "Heading", False, False, None],
        ["1110", "Land and Buildings", "Balance Sheet", "Posting", True, False, 125000],
        ["6110", "Sales, Retail - Dom.", "Income Statement", "Posting", True, False, -9800],
        ["6190", "Total Sales of Retail", "Income Statement", "Total", False, False, None],
        ["8210", "Office Supplies", "Income Statement", "Posting", True, True, 0],
    ])
    write_xlsx(folder / "Currencies.xlsx", "Currencies", [
        "Code", "Description", "ISO Code", "ISO Numeric Code", "Symbol", "Exchange Rate"], [
        ["EUR", "Euro", "EUR", "978", "€", 1.17], ["USD", "US dollar", "USD", "840", "$", 1.27],
    ])


def netsuite() -> None:
    folder = HERE / "netsuite"
    folder.mkdir(exist_ok=True)
    write_bom_csv(folder / "VendorSearchResults.csv", [
        "Internal ID", "ID", "Name", "Company Name", "Email", "Phone", "Address 1",
        "Address 2", "City", "State/Province", "Zip", "Country", "Tax Number", "Inactive"], [
        ["1201", "VEN-0001", "VEN-0001 Northwind Traders", "Northwind Traders",
         "ap@northwind.example", "206-555-0100", "1 Pike Pl", "", "Seattle", "WA", "98101",
         "United States", "", "No"],
        ["1202", "VEN-0002", "VEN-0002 Contoso Ltd", "Contoso Ltd", "", "", "2 Canal St", "",
         "Manchester", "", "M1 3HE", "United Kingdom", "GB980780684", "No"],
        ["1203", "VEN-0003", "VEN-0003 Old Supplier", "Old Supplier", "", "", "", "", "", "",
         "", "", "", "Yes"],
    ])
    write_bom_csv(folder / "AccountSearchResults.csv", [
        "Internal ID", "Number", "Account Name", "Type", "Inactive"], [
        ["58", "6000", "Advertising", "Expense", "No"], ["59", "6100", "Bank Fees", "Expense",
                                                          "No"],
        ["60", "6999", "Old Expense", "Expense", "Yes"]])
    write_bom_csv(folder / "CurrencySearchResults.csv", [
        "Internal ID", "Name", "Symbol", "Exchange Rate", "Is Base Currency"], [
        ["1", "British Pound", "GBP", "1.00", "Yes"], ["2", "Euro", "EUR", "1.17", "No"],
        ["3", "US Dollar", "USD", "1.27", "No"]])


if __name__ == "__main__":
    sage50()
    xero()
    business_central()
    netsuite()
