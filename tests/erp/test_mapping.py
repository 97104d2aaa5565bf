"""Mapping beyond one column: fallbacks, templates, constants, where filters, blank rows."""

from __future__ import annotations

import pandas as pd
import pytest

from sync.foundation.entities import get_kind
from sync.foundation.errors import ConfigError
from sync.reference.rules.mapping import Rules, parse_where, shape
from sync.reference.rules.normalise import KindMapping, normalise

SUPPLIERS = get_kind("suppliers")


def frame(**columns: list[object]) -> pd.DataFrame:
    """An object frame of ``columns``."""
    return pd.DataFrame(columns, dtype=object)


def test_fallback_takes_the_first_filled_column() -> None:
    """IBAN, else the account number: per row, the first alternative that is not empty."""
    raw = frame(Code=["A", "B"], Name=["a", "b"], IBAN=["GB33BUKB20201555555555", " "],
                Account=["1", "12345678"])
    norm = normalise(SUPPLIERS, raw, KindMapping({"BankAccountNumber": ["IBAN", "Account"]}))
    assert list(norm.frame["BankAccountNumber"]) == ["GB33BUKB20201555555555", "12345678"]


def test_template_and_constant() -> None:
    """A template joins columns (empty when all its columns are); a constant fills every row."""
    raw = frame(Ref=["A", "B"], First=["Ann", ""], Last=["Lee", ""], Name=["x", "y"])
    mapping = KindMapping({"Code": "Ref", "AddressLine1": "{First} {Last}",
                           "PaymentTermsType": {"value": "NetDays"}})
    out = normalise(SUPPLIERS, raw, mapping).frame
    assert list(out["AddressLine1"]) == ["Ann Lee", None]
    assert list(out["PaymentTermsType"]) == ["NetDays", "NetDays"]


def test_missing_mapped_column_names_the_field_and_the_columns() -> None:
    """A mapped column the source lacks is a configuration error listing what it has; an
    optional entry is simply empty."""
    raw = frame(Code=["A"], Name=["a"])
    with pytest.raises(ConfigError, match=r"BankName is mapped from column\(s\) \['Bank'\].*"
                                          r"Code, Name"):
        normalise(SUPPLIERS, raw, KindMapping({"BankName": "Bank"}))
    optional = KindMapping({"BankName": {"columns": ["Bank"], "optional": True}})
    assert list(normalise(SUPPLIERS, raw, optional).frame["BankName"]) == [None]


def test_blank_rows_are_skipped_and_counted_not_quarantined() -> None:
    """An all-empty row (an export's trailer of commas) is skipped on every run and counted;
    the row numbers of later rejections still point at the source's rows."""
    raw = frame(Code=["A", "", "", ""], Name=["a", " ", "", "no code"])
    norm = normalise(SUPPLIERS, raw)
    assert norm.blank == 2
    assert [(r.reason, r.row) for r in norm.rejected] == [("missing_code", 4)]
    assert list(norm.frame.index) == ["A"]


@pytest.mark.parametrize(("where", "kept"), [
    ("Status <> 'Inactive'", ["A", "C"]),
    ("status != 'INACTIVE' and Balance > 10", ["C"]),
    ("Status IN ('Active') OR Status IS EMPTY", ["A", "C"]),
    ("NOT (Status = 'Inactive') AND \"Account Type\" LIKE 'Post%'", ["A"]),
    ("[Account Type] IS NOT EMPTY", ["A", "B"]),
])
def test_where_filter(where: str, kept: list[str]) -> None:
    """The SQL-like where filter keeps only matching rows (text ignoring case, numbers as
    numbers) and counts the rest."""
    raw = frame(Code=["A", "B", "C"], Name=["a", "b", "c"], Status=["Active", "Inactive", ""],
                Balance=["9", "100", "20"], **{"Account Type": ["Posting", "Total", ""]})
    norm = normalise(SUPPLIERS, raw, KindMapping(where=where))
    assert list(norm.frame.index) == kept
    assert norm.filtered == 3 - len(kept)


@pytest.mark.parametrize("where", ["Status = ", "Status === 'x'", "(Status = 'x'", "Nope = 'x'"])
def test_bad_where_is_a_config_error(where: str) -> None:
    """A filter that cannot be read, or names a column the source lacks, is exit 2."""
    raw = frame(Code=["A"], Status=["x"])
    with pytest.raises(ConfigError) as caught:
        shape(SUPPLIERS, raw, Rules(where=where))
    assert caught.value.key == "where"


def test_parse_where_gives_a_tree() -> None:
    """AND binds tighter than OR."""
    assert parse_where("a = 1 OR b = 2 AND c = 3")[0] == "or"


def test_base_currency_marks_and_adds_the_base() -> None:
    """base_currency flags the base (rate 1 when empty), or adds it when the list lacks it."""
    currencies = get_kind("currencies")
    listed = frame(Code=["gbp", "EUR"], Name=["Pound", "Euro"], Rate=["", "1.17"])
    out = normalise(currencies, listed, KindMapping(base_currency="GBP"))
    assert out.rejected == ()
    assert (out.frame.loc["GBP", "IsBase"], out.frame.loc["GBP", "Rate"]) == (True, 1.0)
    missing = frame(Code=["EUR"], Name=["Euro"], Rate=["1.17"])
    added = normalise(currencies, missing, KindMapping(base_currency="GBP"))
    assert list(added.frame.index) == ["EUR", "GBP"]
    assert added.rejected == ()
