"""Canonical values, keys and digests: one rule per type, stable bytes."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.foundation.entities import FieldSpec
from sync.reference.rules.columns import canonical_column, column_of
from sync.reference.rules.keys import (
    KEY_SEP,
    collision_key,
    collision_keys,
    digests,
    duplicate_groups,
    key_order,
    positions,
    record_digest,
    record_key,
    sha256_hex,
    strictly_increasing,
)
from sync.reference.rules.values import InvalidValue, canonical_json, canonical_value
from tests.reference.rules.support import FIELDS, SUPPLIERS, TAX

TEXT = FieldSpec("Name", max_length=10)
RATE = FieldSpec("Rate", "float", None)
DAYS = FieldSpec("Days", "int", None)
FLAG = FieldSpec("Flag", "bool", None)
BLOB = FieldSpec("Blob", "json", None)


def reason(spec: FieldSpec, value: object) -> str:
    """The reason code canonical_value refuses ``value`` with."""
    with pytest.raises(InvalidValue) as caught:
        canonical_value(spec, value)
    return caught.value.reason


@pytest.mark.parametrize(("raw", "expected"), [
    ("  Acme  ", "Acme"), ("A\u00a0B", "A B"), ("e\u0301", "\u00e9"), ("", None), ("   ", None),
    (None, None), (float("nan"), None), (pd.NA, None), (42, "42"), (42.0, "42"), (2.5, "2.5"),
    ("\t tabbed \n", "tabbed"), ("😀\u200f\u200d", "😀\u200f\u200d"), (b"caf\xc3\xa9", "café"),
    (dt.date(2024, 1, 2), "2024-01-02"), ("A\u3000B\u2028C", "A B C"),
])
def test_text_rules(raw: object, expected: str | None) -> None:
    """Text is NBSP-free, NFC, trimmed, and empty means missing; emoji and RTL marks stay."""
    assert canonical_value(TEXT, raw) == expected


def test_text_untrimmed_when_asked() -> None:
    """trim=False keeps surrounding spaces but still maps NBSP and NFC."""
    assert canonical_value(TEXT, " a\u00a0", trim=False) == " a "


@pytest.mark.parametrize(("raw", "why"), [
    ("bad\x01", "control_chars"), ("a\x85b", "control_chars"), ("in\nside", "control_chars"),
    (b"\xff\xfe", "bad_encoding"), ("lone \udc80", "bad_encoding"), ("lost \ufffd", "bad_encoding"),
    ("x" * 11, "too_long"), (True, "bad_value"), ([1], "bad_value"),
])
def test_text_refusals(raw: object, why: str) -> None:
    """Control characters, undecodable text and overlong values are refused with a reason."""
    assert reason(TEXT, raw) == why


def test_overlong_text_keeps_its_value() -> None:
    """An overlong value is refused but its text stays available (to key the rejection)."""
    with pytest.raises(InvalidValue) as caught:
        canonical_value(TEXT, " " + "y" * 12)
    assert caught.value.value == "y" * 12
    assert "12 characters" in str(caught.value)
    assert "limit is 10" in str(caught.value)


def test_length_counts_code_points_after_nfc() -> None:
    """An NFD name that is 10 code points once composed fits a 10 limit."""
    assert canonical_value(TEXT, "e\u0301" * 10) == "\u00e9" * 10


@pytest.mark.parametrize(("raw", "expected"), [
    (20, 20.0), ("20", 20.0), ("20.0", 20.0), (" 1.5 ", 1.5), (decimal.Decimal("0.25"), 0.25),
    (np.float64(3), 3.0), (-0.0, 0.0), ("", None),
])
def test_float_rules(raw: object, expected: float | None) -> None:
    """Any finite number or its text is one float; 20, 20.0 and "20" are equal."""
    assert canonical_value(RATE, raw) == expected


@pytest.mark.parametrize("raw", ["1,5", "abc", True, float("inf"), "nan"])
def test_float_refusals(raw: object) -> None:
    """Decimal commas, words, booleans and non-finite numbers are refused."""
    assert reason(RATE, raw) == "bad_value"


@pytest.mark.parametrize(("raw", "expected"), [
    (30, 30), ("30", 30), (30.0, 30), ("30.0", 30), (np.int64(7), 7), (" ", None),
])
def test_int_rules(raw: object, expected: int | None) -> None:
    """Whole numbers from ints, integral floats and their text."""
    assert canonical_value(DAYS, raw) == expected


@pytest.mark.parametrize("raw", [30.5, "thirty", False])
def test_int_refusals(raw: object) -> None:
    """Fractions, words and booleans are not whole numbers."""
    assert reason(DAYS, raw) == "bad_value"


@pytest.mark.parametrize(("raw", "expected"), [
    (True, True), ("yes", True), ("Y", True), ("1", True), (1, True), (np.bool_(False), False),
    ("No", False), ("false", False), (0, False), (0.0, False), ("", None),
])
def test_bool_rules(raw: object, expected: bool | None) -> None:
    """Booleans from true/false, yes/no, y/n, 1/0 in any case."""
    assert canonical_value(FLAG, raw) is expected


def test_bool_refusal() -> None:
    """Anything else is refused."""
    assert reason(FLAG, "maybe") == "bad_value"


def test_json_rules() -> None:
    """JSON text becomes data, tuples become lists, empty is missing, garbage is refused."""
    assert canonical_value(BLOB, '[{"a": 1}]') == [{"a": 1}]
    assert canonical_value(BLOB, ({"a": (1, 2)},)) == [{"a": [1, 2]}]
    assert canonical_value(BLOB, "[]") is None
    assert reason(BLOB, "{oops") == "bad_value"
    assert reason(BLOB, "5") == "bad_value"
    assert reason(BLOB, "[NaN]") == "bad_value"


def test_tolerant_mode_keeps_text() -> None:
    """Records read back are never refused: what cannot convert is kept as text."""
    assert canonical_value(RATE, "abc", strict=False) == "abc"
    assert canonical_value(TEXT, "bad\x01" + "x" * 20, strict=False) == "bad\x01" + "x" * 20
    assert canonical_value(DAYS, True, strict=False) == "True"


def test_record_key_and_custom_field_key() -> None:
    """Keys are the canonical key fields; custom field values join Field and Code."""
    assert record_key(SUPPLIERS, {"Code": " S1 "}) == "S1"
    assert record_key(FIELDS, {"Field": "Dept", "Code": "A"}) == f"Dept{KEY_SEP}A"
    with pytest.raises(ValueError, match="no Code"):
        record_key(SUPPLIERS, {"Code": "  "})


@pytest.mark.parametrize(("a", "b"), [
    ("ABC", " abc"), ("abc ", "Abc"), ("0042", "42"), ("000", "0"), ("\uff21\uff22\uff23", "abc"),
    (f"Dept{KEY_SEP}007", f"dept{KEY_SEP}7"), ("Straße", "STRASSE"),
])
def test_collision_key_meets_variants(a: str, b: str) -> None:
    """Case, spacing, width and zero-padding variants fold to one collision key."""
    assert collision_key(a) == collision_key(b)


@pytest.mark.parametrize(("a", "b"), [("A01", "A1"), ("S-1", "S1"), ("42", "420")])
def test_collision_key_keeps_different_codes_apart(a: str, b: str) -> None:
    """Zeros inside a mixed code, punctuation and digits are significant."""
    assert collision_key(a) != collision_key(b)


@given(st.lists(st.one_of(st.text(max_size=6), st.text(alphabet=" 0aA1\x1fZ", max_size=6))))
def test_collision_keys_equal_the_scalar_rule(keys: list[str]) -> None:
    """The vectorised fold gives exactly collision_key of every key."""
    values = np.array(keys, dtype=object)
    assert list(collision_keys(values)) == [collision_key(k) for k in keys]


def test_duplicate_groups_list_every_member() -> None:
    """Each colliding group is listed with all its positions; unique keys are not."""
    keys = np.array(["S1", "s1", "X", "0042", "42", " S1"], dtype=object)
    assert duplicate_groups(keys) == [[0, 1, 5], [3, 4]]
    assert duplicate_groups(np.array(["A", "B"], dtype=object)) == []


def test_positions_and_order_helpers() -> None:
    """Key lookup works for sorted ASCII, non-ASCII and unsorted keys alike."""
    within = np.array(["B", "C", "É"], dtype=object)
    assert positions(np.array(["A", "C", "É"], dtype=object), within).tolist() == [-1, 1, 2]
    assert positions(np.array(["C"], dtype=object), np.array(["C", "B"], dtype=object)
                     ).tolist() == [0]
    assert strictly_increasing(within)
    assert not strictly_increasing(within[::-1])
    assert not strictly_increasing(np.array(["A", "A"], dtype=object))


@given(st.lists(st.text(alphabet="AB\u00e9z0", max_size=4), unique=True, max_size=12),
       st.sampled_from(["same", "reversed", "one_more", "one_less"]))
def test_positions_equal_a_lookup_whichever_path(within: list[str], how: str) -> None:
    """The position of each key in a unique key list, as a dict lookup gives it: for the very
    same keys (matched in place), the keys reversed, one key more and one less."""
    values = {"same": list(within), "reversed": within[::-1], "one_more": [*within, "new!"],
              "one_less": within[1:]}[how]
    lookup = {k: i for i, k in enumerate(within)}
    found = positions(np.array(values, dtype=object), np.array(within, dtype=object))
    assert found.tolist() == [lookup.get(k, -1) for k in values]


@given(st.lists(st.one_of(st.none(), st.text(alphabet=" a\u00e9\u00a0\ufb01\u0301\x01B",
                                           max_size=6)), max_size=20))
def test_arrow_column_equals_its_values(values: list[str | None]) -> None:
    """A text column read as Arrow (plain, non-ASCII, NBSP, decomposed, control and padded
    cells): when it carries an Arrow form, that form is its canonical values cell by cell."""
    column = column_of(TEXT, pd.Series(values, dtype=pd.ArrowDtype(pa.string())))
    if column.arrow is not None:
        assert column.arrow.to_pylist() == column.values.tolist()
        assert not column.problems


@given(st.lists(st.one_of(st.none(), st.text(max_size=8), st.integers(-5, 5)), max_size=20))
def test_canonical_column_equals_the_scalar_rule(values: list[object]) -> None:
    """The vectorised column gives the scalar rule's value or refusal for every cell."""
    out, problems = canonical_column(TEXT, pd.Series(values, dtype=object))
    for i, value in enumerate(values):
        expected: object
        try:
            expected = canonical_value(TEXT, value)
        except InvalidValue as exc:
            expected = exc.reason
        assert (problems[i].reason if i in problems else out[i]) == expected


def test_golden_digest() -> None:
    """A fixed record has a fixed digest: a library change that alters digests fails here."""
    record = {"Code": "T20", "Name": "Standard rate \u2013 20 % \u2713", "Rate": 20.0}
    text = '{"Code":"T20","Name":"Standard rate \u2013 20 % \u2713","Rate":20}'
    assert canonical_json(record) == text
    # sha256sum of the UTF-8 bytes of ``text``, computed outside Python
    assert record_digest(TAX, record) == (
        "44c72327731e34097e6d448164b2de07c5b85efcfd4e1ab6b3510e79d5e4ea36")


@pytest.mark.parametrize("rate", [20, 20.0, "20", "20.00", np.int64(20), np.float64(20.0),
                                  decimal.Decimal("20")])
def test_digest_is_stable_across_number_forms(rate: object) -> None:
    """20, 20.0 and "20" (and numpy and decimal forms) digest alike."""
    assert record_digest(TAX, {"Code": "T", "Name": "n", "Rate": rate}) == record_digest(
        TAX, {"Code": "T", "Name": "n", "Rate": 20})


def test_digest_omitted_equals_null_and_ignores_extras() -> None:
    """Omitted and None fields, and fields outside the record, do not change the digest."""
    plain = record_digest(SUPPLIERS, {"Code": "S", "Name": "n"})
    assert plain == record_digest(SUPPLIERS, {"Code": "S", "Name": "n", "Email": None,
                                              "VatNumber": "GB1", "Extra": 1})
    assert plain != record_digest(SUPPLIERS, {"Code": "S", "Name": "n", "Email": "a@b.c"})


def test_float_text_form() -> None:
    """Integral floats are written as integers, others in their shortest form."""
    assert canonical_json({"a": 1.0, "b": 0.1, "c": 1e20, "d": [2.0]}) == (
        '{"a":1,"b":0.1,"c":1e+20,"d":[2]}')


record_values = st.fixed_dictionaries({
    "Code": st.one_of(st.none(), st.text(alphabet='AB1"\\', min_size=1, max_size=3)),
    "Name": st.one_of(st.none(), st.text(max_size=5)),
    "PaymentDueDays": st.one_of(st.none(), st.integers(-3, 3), st.integers(-2**70, 2**70)),
    "AnalysisDefaults": st.one_of(st.none(), st.just([{"FieldCode": "A", "Value": "1"}])),
})


def canonical_columns(records: list[dict[str, object]]) -> dict[str, np.ndarray]:
    """The suppliers' sent fields of ``records`` as canonical object columns."""
    columns = {}
    for name in SUPPLIERS.sent_fields:
        values = [canonical_value(SUPPLIERS.field(name), r.get(name), strict=False)
                  for r in records]
        columns[name] = np.array([*values, None], dtype=object)[:-1]
    return columns


@given(st.lists(record_values, max_size=8))
def test_vector_digests_equal_record_digest(records: list[dict[str, object]]) -> None:
    """digests() over canonical columns equals record_digest() of each record."""
    columns = canonical_columns(records)
    got = digests(SUPPLIERS, columns, range(len(records)))
    assert got == [record_digest(SUPPLIERS, r) for r in records]


@given(st.lists(record_values, max_size=8), st.data())
def test_vector_digests_of_some_rows_equal_record_digest(
        records: list[dict[str, object]], data: st.DataObject) -> None:
    """digests() of a subset of the rows (in any order) equals record_digest() of each."""
    columns = canonical_columns(records)
    rows = data.draw(st.lists(st.integers(0, max(len(records) - 1, 0)), max_size=len(records)))
    got = digests(SUPPLIERS, columns, rows)
    assert got == [record_digest(SUPPLIERS, records[r]) for r in rows]


@given(st.lists(st.fixed_dictionaries({
    "AddressLine1": st.text(alphabet='a\x01\x1f"\\\u00e9\n \x7f', min_size=1, max_size=4),
    "Name": st.one_of(st.none(), st.text(alphabet='b"\\\x02', max_size=3)),
    "Code": st.text(alphabet="AB1", min_size=1, max_size=3),
}), max_size=6))
def test_vector_digests_with_a_field_in_every_row(records: list[dict[str, object]]) -> None:
    """The first field (in name order) present in every row opens each row's text; control
    characters, quotes and backslashes anywhere still give each row's record_digest()."""
    columns = canonical_columns(records)
    got = digests(SUPPLIERS, columns, range(len(records)))
    assert got == [record_digest(SUPPLIERS, r) for r in records]


@pytest.mark.parametrize("hidden", ['"', "\\", "\x01", '"\x01\\'])
def test_bytes_under_a_missing_cell_change_nothing(hidden: str) -> None:
    """Text columns given as Arrow (sliced, so their bytes start mid-buffer) whose missing
    cells' bytes hold a quote, a backslash or a control character: the digests are each
    row's record_digest() all the same (those bytes are never part of a value)."""
    cells = ["skip", "A1", hidden, "B2", "C3"]
    data = "".join(cells).encode()
    offsets = np.cumsum([0, *(len(c.encode()) for c in cells)]).astype(np.int32)
    valid = np.packbits(np.array([1, 1, 0, 1, 1, 0, 0, 0], dtype=bool), bitorder="little")
    names = pa.Array.from_buffers(pa.string(), len(cells), [
        pa.py_buffer(valid.tobytes()), pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)],
        null_count=1).slice(1)
    records: list[dict[str, object]] = [
        {"Code": f"S{i}", "AddressLine1": "1 High St", "Name": name}
        for i, name in enumerate(names.to_pylist())]
    columns = {name: np.array([*[r.get(name) for r in records], None], dtype=object)[:-1]
               for name in SUPPLIERS.sent_fields}
    for first in ("1 High St", None):  # the first field in every row, and in none
        for r in records:
            r["AddressLine1"] = first
        columns["AddressLine1"] = np.array([first] * len(records), dtype=object)
        got = digests(SUPPLIERS, columns, range(len(records)), arrow={"Name": names})
        assert got == [record_digest(SUPPLIERS, r) for r in records]


@pytest.mark.parametrize("as_given", [
    pa.large_string(), pa.string_view(), "chunked"], ids=["large", "view", "chunked"])
def test_text_columns_of_any_arrow_text_type(as_given: object) -> None:
    """A text column handed over as large strings, string views or in chunks digests as the
    plain string array does: each row's record_digest()."""
    records: list[dict[str, object]] = [
        {"Code": "A1", "AddressLine1": 'say "hi"\\', "Name": None},
        {"Code": "B2", "AddressLine1": "caf\u00e9", "Name": "Bell"}]
    columns = canonical_columns(records)
    names = pa.array(["A1", "B2"])
    given_names = (pa.chunked_array([names[:1], names[1:]]) if as_given == "chunked"
                   else names.cast(as_given))
    got = digests(SUPPLIERS, columns, range(2), arrow={"Code": given_names})
    assert got == [record_digest(SUPPLIERS, r) for r in records]


def test_a_row_without_any_value_digests_as_the_empty_object() -> None:
    """Every field missing: the digest of ``{}``, through the column path as through one."""
    columns = {name: np.array([None, None], dtype=object) for name in SUPPLIERS.sent_fields}
    columns["Code"] = np.array([None, 'A"\\'], dtype=object)
    got = digests(SUPPLIERS, columns, [0, 1])
    assert got == [record_digest(SUPPLIERS, {}), record_digest(SUPPLIERS, {"Code": 'A"\\'})]
    assert got[0] == sha256_hex("{}")


@pytest.mark.parametrize("empty", ["AddressLine1", "Telephone", "AnalysisDefaults",
                                   "PaymentDueDays", "every"])
def test_a_field_missing_in_every_row_is_left_out(empty: str) -> None:
    """A field missing in every row (an ERP's unused column), given as Arrow or not, first
    in name order or not, and every field missing: each row's record_digest()."""
    records: list[dict[str, object]] = [
        {"Code": f"S{i}", "AddressLine1": f"{i} High St", "Telephone": "0113",
         "AnalysisDefaults": [{"FieldCode": "A", "Value": str(i % 2)}], "PaymentDueDays": i}
        for i in range(4)]
    for r in records:
        for name in (list(r) if empty == "every" else [empty]):
            r.pop(name)
    columns = canonical_columns(records)
    arrow = {n: pa.array(columns[n].tolist(), type=pa.string())
             for n in ("AddressLine1", "Telephone", "Code")}
    want = [record_digest(SUPPLIERS, r) for r in records]
    assert digests(SUPPLIERS, columns, range(4), arrow=arrow) == want
    assert digests(SUPPLIERS, columns, range(4)) == want


def test_digests_in_batches_equal_record_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batched: every row and a shuffled subset, with one batch needing the general path (a
    lone surrogate Arrow cannot hold), give each row's record_digest()."""
    import sync.reference.rules.keys as keys_module

    monkeypatch.setattr(keys_module, "DIGEST_BATCH", 3)
    records: list[dict[str, object]] = [
        {"Code": f"S{i}", "Name": 'say "hi"\\' if i % 2 else None, "PaymentDueDays": i}
        for i in range(10)]
    records[4]["Name"] = "bad \udcff"
    columns = {name: np.array([*[r.get(name) for r in records], None], dtype=object)[:-1]
               for name in SUPPLIERS.sent_fields}
    want = [record_digest(SUPPLIERS, r) for r in records]
    assert digests(SUPPLIERS, columns, range(10)) == want
    rows = [9, 0, 4, 7, 2]
    assert digests(SUPPLIERS, columns, rows) == [want[r] for r in rows]


def test_key_order_is_sorted_order() -> None:
    """key_order() gives sorted()'s order, through Arrow and (a lone surrogate) Python."""
    keys = ["b", "Zoë", "a\x1fB", "é", "10", "9", "😀", "\uff41", "A"]
    assert [keys[i] for i in key_order(keys)] == sorted(keys)
    odd = [*keys, "x\udcff"]
    assert [odd[i] for i in key_order(odd)] == sorted(odd)
    assert key_order([]).tolist() == []


def test_digests_through_a_helper_process_equal_record_digest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows in several batches, hashed by the helper process (sha256_batches): every row's
    record_digest(), with a batch that needs the general path (a lone surrogate) among them,
    and the same digests as hashing in this process."""
    from connectors import sha_child
    from sync.reference.rules import keys

    monkeypatch.setattr(keys, "DIGEST_BATCH", 3)
    records: list[dict[str, object]] = [
        {"Code": f"S{i}", "Name": ["caf\u00e9", 'a "q" \\', None, "\U0001F600", ""][i % 5],
         "PaymentDueDays": i} for i in range(11)]
    records[4]["Name"] = "bad \udc80"
    columns = canonical_columns(records)
    columns["Name"][4] = "bad \udc80"
    rows = [10, *range(10)]  # out of order: batches are taken, not sliced
    asked: list[int] = []

    def hasher(batches: Any) -> Any:
        for found in sha_child.sha256_batches(batches):
            asked.append(0 if found is None else len(found))
            yield found

    with_helper = digests(SUPPLIERS, columns, rows, hasher=hasher)
    assert with_helper == digests(SUPPLIERS, columns, rows)
    assert with_helper == [record_digest(SUPPLIERS, records[r]) for r in rows]
    assert asked == [3, 0, 3, 2]  # the batch with the surrogate took the general path
