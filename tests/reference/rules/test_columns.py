"""Whole text columns as Python objects (the canonical frame's columns)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.reference.rules import checks, columns
from sync.reference.rules.columns import column_objects, text_objects
from sync.reference.rules.findings import Work
from tests.reference.rules.support import SUPPLIERS


@pytest.mark.parametrize("values", [
    ["GB", "IE", None, "GB", "FR"] * 5000,           # repeats: built from distinct values
    [f"S{i:06d}" for i in range(20_000)] + [None],    # distinct: converted cell by cell
    ["Zoë", None] * 6000,                             # non-ASCII, repeating
    [None] * 10_000,
    [],
])
def test_text_objects_equal_arrow_to_numpy(values: list[str | None]) -> None:
    """text_objects() gives what Arrow's to_numpy gives, cell for cell, None where missing;
    repeated values share one object."""
    arr = pa.array(values, type=pa.string())
    got = text_objects(arr)
    assert got.dtype == object
    assert got.tolist() == values
    if values and values[0] == "GB":
        assert got[0] is got[3]


@pytest.mark.parametrize("pattern", [checks.EMAIL_PATTERN, checks._SORT_CODE,
                                     checks._BIC_SHAPE, checks._IBAN_SHAPE])
@pytest.mark.parametrize("match", [True, False])
def test_a_repeated_column_is_matched_once_per_value_with_the_same_rows(
        pattern: str, match: bool) -> None:
    """A long column of few distinct values (missing cells among them) is matched once per
    distinct value: the rows found are those a match of every cell finds."""
    values = ["20-20-15", "BUKBGB22", None, "12345", "a@b.co", "GB33BUKB20201555555555", "",
              "bukbgb22xxx", "x y@z.com"]
    cells = [values[(i * 7) % len(values)] for i in range(10_000)]
    texts = pa.array(cells, type=pa.string())
    assert columns.repeats(texts)
    work = Work(SUPPLIERS, len(cells), {}, {"Email": np.array(cells, dtype=object)},
                arrow={"Email": texts})
    every = pc.match_substring_regex(texts, pattern)
    wanted = every if match else pc.invert(every)
    expected = np.flatnonzero(pc.fill_null(wanted, False).to_numpy(zero_copy_only=False))
    found = checks._rows_matching(work, "Email", pattern, match=match)
    assert found.tolist() == expected.tolist()
    assert len(found)


def test_failing_values_are_found_alike_from_arrow_or_objects() -> None:
    """The rows of failing bank details, with their problems, are the same whether the
    distinct values are found in the Arrow column or in the objects."""
    ibans = ["GB33BUKB20201555555556", "GB33BUKB20201555555555", None,
             "GB33BUKB20201555555556", "DE89370400440532013000", "GB00XXXX00000000000000"]
    values = np.array(ibans * 50, dtype=object)
    rows = np.flatnonzero([v is not None for v in values.tolist()])
    texts = pa.array(values.tolist(), type=pa.string())
    as_objects = Work(SUPPLIERS, len(values), {}, {"Email": values})
    as_texts = Work(SUPPLIERS, len(values), {}, {"Email": values}, arrow={"Email": texts})
    from_objects = checks._rows_failing(as_objects, "Email", rows, checks._iban_problem, "iban")
    from_arrow = checks._rows_failing(as_texts, "Email", rows, checks._iban_problem, "iban")
    assert from_arrow == from_objects
    assert checks.settled_checks(as_texts)["iban"].to_pylist() == [
        "GB33BUKB20201555555555", "DE89370400440532013000"]
    assert sorted({r % 6 for r in from_arrow}) == [0, 3, 5]


def test_a_held_column_is_made_once_when_read_and_equals_text_objects() -> None:
    """A column held as Arrow answers ``in``, ``len`` and iteration without being made; read
    (by ``[]``, ``get``, ``items``), it gives text_objects' values, once; a copy still holds
    it; setting a column replaces what was held."""
    texts = pa.array(["a", None, "b", "a"], type=pa.string())
    cols = columns.Columns({"Code": np.array(["1", "2", "3", "4"], dtype=object)})
    cols.hold("Name", texts)
    assert "Name" in cols
    assert len(cols) == 2
    assert list(cols) == ["Code", "Name"]
    assert cols.held("Name") is texts
    assert cols.held("Code") is None
    twin = cols.copy()
    made = cols["Name"]
    assert made.tolist() == text_objects(texts).tolist() == ["a", None, "b", "a"]
    assert cols["Name"] is made
    assert cols.get("Name") is made
    assert cols.held("Name") is None
    assert twin.held("Name") is texts  # the copy was taken before: still held there
    assert dict(twin.items())["Name"].tolist() == made.tolist()
    assert twin.held("Name") is None
    cols.hold("Email", texts)
    cols["Email"] = np.array([None] * 4, dtype=object)
    assert cols.held("Email") is None
    assert cols["Email"].tolist() == [None] * 4
    assert cols.get("Missing") is None
    assert "Missing" not in cols
    assert "held=['Name']" not in repr(cols)
    assert "Name" in repr(cols)


def test_a_held_column_read_by_several_threads_gives_equal_values() -> None:
    """Threads reading one held column at once all get its values; the column ends made."""
    texts = pa.array([f"v{i % 97}" if i % 11 else None for i in range(50_000)], pa.string())
    cols = columns.Columns()
    cols.hold("Name", texts)
    start = threading.Barrier(4)
    got: list[list[Any]] = []

    def read() -> None:
        start.wait()
        got.append(cols["Name"].tolist())

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4
    assert all(g == texts.to_pylist() for g in got)
    assert cols.held("Name") is None


@pytest.mark.parametrize(("column", "expected"), [
    (pd.Series(["a", None, "c"], dtype=object), ["a", None, "c"]),
    (pd.Series(["a", None, "c"], dtype=pd.ArrowDtype(pa.string())), ["a", None, "c"]),
    (pd.Series([1, None, 2.5], dtype=object), [1, None, 2.5])])
def test_column_objects_give_none_where_missing(column: pd.Series, expected: list[Any]) -> None:
    """An object column as it is; an Arrow-backed one with None, never pd.NA."""
    out = column_objects(column)
    assert out.dtype == object
    assert out.tolist() == expected
    assert out[1] is None


def test_vat_failures_in_arrow_name_each_failing_row_with_its_country() -> None:
    """A number valid for one country and not another, a number with its own prefix, one
    python-stdnum cannot check and a missing one: only the failing rows, in row order."""
    numbers = ["980780684", "980780684", "GB123456789", None, "XX1234", "GB980780684"]
    countries = ["GB", "DE", None, "GB", "GB", "FR"]
    texts = pa.array(numbers, pa.string())
    work = Work(SUPPLIERS, 6, {}, {"IsoCode": np.array(countries, dtype=object)},
                arrow={"VatNumber": texts, "IsoCode": pa.array(countries, pa.string())})
    work.cols.hold("VatNumber", texts)
    found = checks._vat_failing(work, "VatNumber")
    assert list(found) == [1, 2]
    assert "'980780684' is not a valid VAT number" in found[1]
    assert "'GB123456789'" in found[2]
    assert work.cols.held("VatNumber") is texts  # checked in Arrow: no str objects made


vat_numbers = st.sampled_from([None, "GB980780684", "GB123456789", "980780684", "DE136695976",
                               "DE000000000", "EL094259216", "094259216", "FR40303265045",
                               "XX1234", "gb 980 780 684"])
iso_codes = st.sampled_from([None, "GB", "DE", "GR", "FR", "US"])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(vat_numbers, iso_codes), max_size=30), st.booleans(),
       st.booleans())
def test_vat_failures_are_found_alike_in_arrow_or_in_objects(
        pairs: list[tuple[Any, Any]], with_country: bool, country_as_objects: bool) -> None:
    """The failing VAT numbers, their rows (in order) and their problems are the same whether
    the (number, country) pairs are found in Arrow or value by value; with no IsoCode
    column, or an IsoCode column held as objects only."""
    numbers = np.array([p[0] for p in pairs], dtype=object)
    countries = np.array([p[1] for p in pairs], dtype=object)
    cols: dict[str, Any] = {"VatNumber": numbers}
    arrow: dict[str, Any] = {"VatNumber": pa.array(numbers.tolist(), type=pa.string())}
    if with_country:
        cols["IsoCode"] = countries
        if not country_as_objects:
            arrow["IsoCode"] = pa.array(countries.tolist(), type=pa.string())
    work = Work(SUPPLIERS, len(pairs), {}, dict(cols), arrow=arrow)
    plain = Work(SUPPLIERS, len(pairs), {}, dict(cols))
    found = checks._vat_failing(work, "VatNumber")
    assert found == checks._vat_failing_objects(plain, "VatNumber")
    assert list(found) == sorted(found)


def test_digests_read_held_text_as_arrow_and_never_make_it() -> None:
    """Digests of rows whose text columns are held: those of the same values as objects,
    with every held column still held afterwards (a held field never sent, too)."""
    from sync.reference.rules.keys import digests, record_digest

    names = pa.array(["Abbey", None, "Crane"], type=pa.string())
    vat = pa.array(["GB1", "GB2", None], type=pa.string())
    cols = columns.Columns({f: np.full(3, None, dtype=object) for f in SUPPLIERS.field_names})
    cols["Code"] = np.array(["A", "B", "C"], dtype=object)
    cols["PaymentDueDays"] = np.array([30, None, 7], dtype=object)
    cols.hold("Name", names)
    cols.hold("VatNumber", vat)
    got = digests(SUPPLIERS, cols, [0, 1, 2], arrow={"Name": names, "VatNumber": vat})
    assert got == [record_digest(SUPPLIERS, {"Code": "A", "Name": "Abbey", "PaymentDueDays": 30}),
                   record_digest(SUPPLIERS, {"Code": "B"}),
                   record_digest(SUPPLIERS, {"Code": "C", "Name": "Crane", "PaymentDueDays": 7})]
    assert cols.held("Name") is names
    assert cols.held("VatNumber") is vat
