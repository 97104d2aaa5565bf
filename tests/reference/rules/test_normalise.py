"""Normalisation: mapping, every rejection rule, warnings, and the canonical frame shape."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.foundation.config import KindSourceConfig, ValidationConfig
from sync.foundation.errors import ConfigError
from sync.reference.rules.keys import KEY_SEP, record_digest
from sync.reference.rules.normalise import KindMapping, Normalised, canonical_records, normalise
from tests.fixtures.profiles import examples
from tests.reference.rules.support import (
    ACCOUNTS,
    CURRENCIES,
    FIELDS,
    SUPPLIERS,
    TAX,
    frame_of,
    judged,
    rows,
    source_frame,
    supplier_records,
)


def reasons(result: Normalised) -> dict[tuple[int | None, str | None], str]:
    """(row, field) -> reason of every rejection."""
    return {(r.row, r.field): r.reason for r in result.rejected}


def test_frame_convention() -> None:
    """Index of sorted keys named "key", one object column per field plus _digest, no NA."""
    result = normalise(SUPPLIERS, source_frame({"Code": ["S2", "S1"], "Name": ["b", "a"]}))
    frame = result.frame
    assert frame.index.name == "key"
    assert frame.index.tolist() == ["S1", "S2"]
    assert list(frame.columns) == [*SUPPLIERS.field_names, "_digest"]
    assert all(dtype is np.dtype(object) for dtype in frame.dtypes)
    assert frame.at["S1", "Email"] is None
    assert frame.at["S1", "Name"] == "a"
    assert frame.at["S1", "_digest"] == record_digest(SUPPLIERS, {"Code": "S1", "Name": "a"})


@pytest.mark.parametrize("only", [set(), {"S2"}, {"S1", "S3", "S9"}])
def test_digest_only_digests_those_keys_and_changes_nothing_else(only: set[str]) -> None:
    """``digest_only`` leaves None where a row's key is not listed; every other cell, and the
    listed rows' digests, are those of a full normalise (unsorted input, a rejected row)."""
    raw = source_frame({"Code": ["S3", "S1", "S2", "S4"], "Name": ["c", "a", "b", None],
                        "Email": ["c@x.com", None, "b@x.com", None]})
    full = normalise(SUPPLIERS, raw)
    part = normalise(SUPPLIERS, raw, digest_only=only)
    assert part.rejected == full.rejected
    pd.testing.assert_frame_equal(part.frame.drop(columns="_digest"),
                                  full.frame.drop(columns="_digest"))
    expected = {k: (d if k in only else None) for k, d in full.frame["_digest"].items()}
    assert part.frame["_digest"].to_dict() == expected


def test_mapping_is_case_insensitive_and_automatic() -> None:
    """Mapped columns match ignoring case; unmapped ones map when the name matches."""
    raw = source_frame({"SUPPLIER_NO": ["S1"], "name": ["Acme"], "EMAIL": ["a@b.co"]})
    mapping = KindMapping(mapping={"Code": "supplier_no"})
    frame = normalise(SUPPLIERS, raw, mapping).frame
    assert rows(frame)["S1"]["Name"] == "Acme"
    assert rows(frame)["S1"]["Email"] == "a@b.co"


def test_defaults_fill_missing_cells_and_columns() -> None:
    """A default fills empty cells and absent columns, never a value that is there."""
    raw = source_frame({"Code": ["S1", "S2"], "Name": ["a", "b"], "PaymentTermsType": ["", "X"]})
    mapping = KindMapping(defaults={"PaymentTermsType": "NetDays", "PaymentDueDays": "30"})
    out = rows(normalise(SUPPLIERS, raw, mapping).frame)
    assert out["S1"]["PaymentTermsType"] == "NetDays"
    assert out["S2"]["PaymentTermsType"] == "X"
    assert out["S1"]["PaymentDueDays"] == 30


def test_mapping_from_config() -> None:
    """The mapping is built from the configuration table of the kind."""
    config = KindSourceConfig(mapping={"Code": "no"}, defaults={"Name": "?"}, trim=False)
    assert KindMapping.from_config(config) == KindMapping({"Code": "no"}, {"Name": "?"}, False)
    assert KindMapping.from_config(None) == KindMapping()


@pytest.mark.parametrize(("mapping", "key"), [
    (KindMapping(mapping={"Colour": "x"}), "mapping.Colour"),
    (KindMapping(mapping={"Code": "nope"}), "mapping.Code"),
    (KindMapping(defaults={"PaymentDueDays": "soon"}), "defaults.PaymentDueDays"),
])
def test_bad_mapping_is_a_config_error(mapping: KindMapping, key: str) -> None:
    """A mapping naming an unknown field or column, or a bad default, names its key."""
    with pytest.raises(ConfigError) as caught:
        normalise(SUPPLIERS, source_frame({"Code": ["S1"], "Name": ["a"]}), mapping)
    assert caught.value.key == key


def test_missing_code_and_missing_name() -> None:
    """Rows without a key or a required value are rejected, named by row."""
    result = normalise(TAX, source_frame({"Code": [None, "T1", "T2"], "Name": ["a", "", "c"],
                                          "Rate": [1, 2, None]}))
    assert reasons(result) == {(1, "Code"): "missing_code", (2, "Name"): "missing_value",
                               (3, "Rate"): "missing_value"}
    assert result.frame.empty
    message = next(r.message for r in result.rejected if r.row == 2)
    assert "Tax codes row 2 (T1)" in message
    assert "Name" in message
    assert "fill it in" in message


def test_duplicate_group_is_rejected_whole_and_listed() -> None:
    """Every member of a colliding group is rejected, each message listing all members."""
    raw = source_frame({"Code": ["ABC", " abc", "abc ", "0042", "42", "X"],
                        "Name": ["a", "b", "c", "d", "e", "f"]})
    result = normalise(ACCOUNTS, raw)
    assert result.frame.index.tolist() == ["X"]
    assert {r.row for r in result.rejected if r.reason == "duplicate_key"} == {1, 2, 3, 4, 5}
    first = next(r for r in result.rejected if r.row == 1)
    assert "'ABC' (row 1)" in first.message
    assert "' abc' (row 2)" in first.message
    assert "'abc ' (row 3)" in first.message
    assert "unique" in first.message
    assert set(result.held_keys) == {"ABC", "abc", "0042", "42"}


def test_a_bad_member_still_holds_its_group() -> None:
    """A colliding row rejected for another reason still takes its group down with it."""
    raw = source_frame({"Code": ["A1", "a1"], "Name": ["ok", "x" * 101]})
    result = normalise(ACCOUNTS, raw)
    assert result.frame.empty
    assert reasons(result)[(2, "Name")] == "too_long"


@pytest.mark.parametrize(("field", "value", "why"), [
    ("Name", "bad\x07bell", "control_chars"), ("Name", b"\xff", "bad_encoding"),
    ("Name", "half \udc81", "bad_encoding"), ("Code", "C" * 21, "too_long"),
    ("IsoCode", "XX", "bad_iso_country"), ("IsoCode", "GBR", "too_long"),
    ("PaymentDueDays", "soon", "bad_value"),
])
def test_bad_cells_are_rejected(field: str, value: Any, why: str) -> None:
    """Each bad value rejects its row with the field and a reason code."""
    columns: dict[str, list[Any]] = {"Code": ["S1"], "Name": ["n"], field: [value]}
    result = normalise(SUPPLIERS, source_frame(columns))
    assert reasons(result) == {(1, field): why}
    assert result.frame.empty
    assert result.rejected[0].key == ("C" * 21 if field == "Code" else "S1")


def test_iso_codes_are_upper_cased() -> None:
    """Country and currency codes are upper-cased before they are checked."""
    frame = normalise(SUPPLIERS, source_frame({"Code": ["S1"], "Name": ["n"],
                                               "IsoCode": ["gb"]})).frame
    assert frame.at["S1", "IsoCode"] == "GB"


def currencies(codes: list[str], rates: list[Any], base: list[Any]) -> pd.DataFrame:
    """A currencies source frame."""
    return source_frame({"Code": codes, "Name": codes, "Rate": rates, "IsBase": base})


def test_currencies_need_exactly_one_base() -> None:
    """One base currency with rate 1 passes; lower-case codes are upper-cased."""
    result = normalise(CURRENCIES, currencies(["gbp", "EUR"], [1, "1.17"], ["yes", None]))
    assert not result.rejected
    assert rows(result.frame)["EUR"]["IsBase"] is False
    assert rows(result.frame)["GBP"]["Rate"] == 1


@pytest.mark.parametrize(("rates", "base", "says"), [
    ([1, 1.1], [False, False], "no currency has IsBase"),
    ([1, 1], [True, True], "2 currencies have IsBase = true (EUR, GBP)"),
    ([1.2, 1], [True, False], "has Rate 1.2"),
])
def test_base_currency_problems_reject_every_row(rates: list[Any], base: list[Any],
                                                  says: str) -> None:
    """No base, two bases, or a base rate other than 1 holds back every currency."""
    result = normalise(CURRENCIES, currencies(["EUR", "GBP"], rates, base))
    assert result.frame.empty
    assert {r.reason for r in result.rejected} == {"base_currency"}
    assert says in result.rejected[0].message


def test_bad_currency_and_negative_rate() -> None:
    """An unknown ISO 4217 code and a negative rate are rejected."""
    result = normalise(CURRENCIES, currencies(["GBP", "XQZ", "USD"], [1, 2, -1],
                                              [True, False, False]))
    assert reasons(result) == {(2, "Code"): "bad_currency", (3, "Rate"): "negative_rate"}
    assert result.frame.index.tolist() == ["GBP"]


def supplier(**values: Any) -> pd.DataFrame:
    """One supplier row with the given extra values."""
    return source_frame({"Code": ["S1"], "Name": ["n"], **{k: [v] for k, v in values.items()}})


@pytest.mark.parametrize(("values", "why"), [
    ({"VatNumber": "DE136695977"}, "bad_vat"), ({"VatNumber": "123", "IsoCode": "FR"}, "bad_vat"),
    ({"BankAccountNumber": "GB33BUKB20201555555556"}, "bad_iban"),
    ({"BankSortCode": "12345"}, "bad_bank"), ({"BankSortCode": "BUKBXX22"}, "bad_bank"),
])
def test_vat_and_bank_checks_follow_configuration(values: dict[str, Any], why: str) -> None:
    """A bad VAT number or bank detail warns, rejects, or passes as configured."""
    warned = normalise(SUPPLIERS, supplier(**values), validation=ValidationConfig())
    assert [w.reason for w in warned.warnings] == [why]
    assert len(warned.frame) == 1
    strict = normalise(SUPPLIERS, supplier(**values),
                       validation=ValidationConfig(vat="reject", bank="reject"))
    assert [r.reason for r in strict.rejected] == [why]
    assert strict.frame.empty
    off = normalise(SUPPLIERS, supplier(**values), validation=ValidationConfig(vat="off",
                                                                               bank="off"))
    assert not off.warnings
    assert not off.rejected


def test_bank_findings_name_each_row_of_a_repeated_value() -> None:
    """Bad and good bank details repeated over rows: each row holding a bad one, and only
    those, gets its finding, with the value in the message."""
    bad_iban, good_iban = "GB33BUKB20201555555556", "GB33BUKB20201555555555"
    ibans = [bad_iban, good_iban, bad_iban, None, good_iban, "GB82WEST12345698765431"]
    sorts = ["12345", "20-20-15", None, "BUKBXX22", "12345", "BUKBGB22"]
    frame = source_frame({"Code": [f"S{i}" for i in range(6)], "Name": ["n"] * 6,
                          "BankAccountNumber": ibans, "BankSortCode": sorts})
    result = normalise(SUPPLIERS, frame, validation=ValidationConfig(bank="reject"))
    found = sorted((r.row, r.reason) for r in result.rejected)
    assert found == [(1, "bad_bank"), (1, "bad_iban"), (3, "bad_iban"), (4, "bad_bank"),
                     (5, "bad_bank"), (6, "bad_iban")]
    for r in result.rejected:
        value = (ibans if r.reason == "bad_iban" else sorts)[r.row - 1]
        assert f"{value!r}" in r.message


@pytest.mark.parametrize("values", [
    {"VatNumber": "GB980780684"}, {"VatNumber": "980 7806 84", "IsoCode": "GB"},
    {"VatNumber": "US-12345"}, {"VatNumber": "12345"}, {"BankAccountNumber": "12345678"},
    {"BankAccountNumber": "GB33 BUKB 2020 1555 5555 55", "BankSortCode": "BUKBGB22"},
    {"BankSortCode": "20-20-15"}, {"BankSortCode": "202015"},
])
def test_good_or_uncheckable_details_pass(values: dict[str, Any]) -> None:
    """Valid numbers pass; countries stdnum cannot check and non-IBAN accounts are not judged."""
    result = normalise(SUPPLIERS, supplier(**values),
                       validation=ValidationConfig(vat="reject", bank="reject"))
    assert not result.rejected
    assert not result.warnings


def test_vat_is_checked_then_blanked() -> None:
    """VatNumber never reaches the frame or the digest."""
    frame = normalise(SUPPLIERS, supplier(VatNumber="GB980780684")).frame
    assert frame.at["S1", "VatNumber"] is None
    assert frame.at["S1", "_digest"] == record_digest(SUPPLIERS, {"Code": "S1", "Name": "n"})


def test_bad_email_is_a_warning_only() -> None:
    """A malformed email warns and is still sent as it is."""
    result = normalise(SUPPLIERS, supplier(Email="not an email"))
    assert [w.reason for w in result.warnings] == ["bad_email"]
    assert result.frame.at["S1", "Email"] == "not an email"


def test_custom_fields_take_the_first_rows_definition() -> None:
    """Type and Mandatory come from a field's first row; later disagreement warns."""
    raw = source_frame({"Field": ["Dept", "Dept", "Proj"], "Code": ["A", "B", "P1"],
                        "Name": ["a", "b", "p"], "Type": [None, "Date", "List"],
                        "Mandatory": ["yes", None, None]})
    result = normalise(FIELDS, raw)
    out = rows(result.frame)
    assert out[f"Dept{KEY_SEP}B"]["Type"] == "List"
    assert out[f"Dept{KEY_SEP}B"]["Mandatory"]
    assert out[f"Proj{KEY_SEP}P1"]["Mandatory"] is False
    assert [(w.row, w.field) for w in result.warnings] == [(2, "Type")]


def test_custom_field_values_collide_within_a_field_only() -> None:
    """The same code under two fields is fine; case variants under one field collide."""
    raw = source_frame({"Field": ["Dept", "Proj", "dept"], "Code": ["A", "A", "a"],
                        "Name": ["x", "y", "z"]})
    result = normalise(FIELDS, raw)
    assert result.frame.index.tolist() == [f"Proj{KEY_SEP}A"]
    assert {r.row for r in result.rejected} == {1, 3}


def test_source_digest_changes_with_the_row() -> None:
    """A rejection carries a digest of its source row, which changes when the row does."""
    first = normalise(TAX, source_frame({"Code": ["T"], "Name": ["x"], "Rate": [-1]}))
    again = normalise(TAX, source_frame({"Code": ["T"], "Name": ["x"], "Rate": [-1]}))
    fixed = normalise(TAX, source_frame({"Code": ["T"], "Name": ["x"], "Rate": [-2]}))
    assert first.rejected[0].source_digest == again.rejected[0].source_digest
    assert first.rejected[0].source_digest != fixed.rejected[0].source_digest


def test_numeric_source_columns() -> None:
    """Native numeric columns (and integer codes from a database) are taken as they are."""
    raw = pd.DataFrame({"Code": [10, 2], "Name": ["a", "b"], "Rate": [20, 5]})
    frame = normalise(TAX, raw).frame
    assert rows(frame) == {
        "10": {"Code": "10", "Name": "a", "Rate": 20.0, "_digest": frame.at["10", "_digest"]},
        "2": {"Code": "2", "Name": "b", "Rate": 5.0, "_digest": frame.at["2", "_digest"]}}


@pytest.mark.parametrize("rates", [
    pd.Series([20, 5], dtype="int64"), pd.Series([20.0, 5.0], dtype="float64"),
    pd.Series(["20", "5.0"], dtype=object), pd.Series(["20", "5"], dtype="str"),
])
def test_digests_do_not_depend_on_the_source_dtype(rates: pd.Series) -> None:
    """Rates read as int64, float64, text or pandas str digest alike."""
    raw = pd.DataFrame({"Code": ["T1", "T2"], "Name": ["std", "low"], "Rate": rates})
    frame = normalise(TAX, raw).frame
    assert frame["_digest"].tolist() == [
        record_digest(TAX, {"Code": "T1", "Name": "std", "Rate": 20}),
        record_digest(TAX, {"Code": "T2", "Name": "low", "Rate": 5})]


def test_canonical_records_are_tolerant() -> None:
    """Read-back records are never rejected; keyless ones are skipped, the last duplicate wins."""
    frame = canonical_records(TAX, [
        {"Code": "T1", "Name": "bad\x01", "Rate": "abc", "Extra": 1},
        {"Name": "no code"}, {"Code": "T2", "Name": "old", "Rate": 1},
        {"Code": "T2", "Name": "new", "Rate": 1.0}])
    assert frame.index.tolist() == ["T1", "T2"]
    assert frame.at["T1", "Rate"] == "abc"
    assert frame.at["T2", "Name"] == "new"
    assert frame.at["T2", "_digest"] == record_digest(TAX, {"Code": "T2", "Name": "new",
                                                           "Rate": 1})


def test_stored_digests_are_used_as_given() -> None:
    """Digests kept beside the records are taken as they are; missing ones are computed."""
    records = [{"Code": "T1", "Name": "a", "Rate": 1}, {"Code": "T2", "Name": "b", "Rate": 2}]
    frame = canonical_records(TAX, records, stored_digests={"T1": "stored"})
    assert frame["_digest"].tolist() == ["stored", record_digest(TAX, records[1])]


def test_empty_source() -> None:
    """An empty source is an empty canonical frame with the full set of columns."""
    result = normalise(SUPPLIERS, pd.DataFrame())
    assert result.frame.empty
    assert list(result.frame.columns)[-1] == "_digest"
    assert canonical_records(SUPPLIERS, []).empty


@settings(max_examples=examples(60), deadline=None)
@given(supplier_records(), supplier_records(), st.randoms(use_true_random=False))
def test_known_rows_only_save_work(old: list[dict[str, Any]], new: list[dict[str, Any]],
                                   rnd: Any) -> None:
    """normalise(known=state) gives exactly the frame normalise() gives without it."""
    mixed = old[: len(old) // 2] + new
    seen: set[str] = set()
    unique = [r for r in mixed if not (r["Code"].casefold() in seen or seen.add(
        r["Code"].casefold()))]
    rnd.shuffle(unique)
    raw = source_frame({k: [r.get(k) for r in unique] for k in ("Code", "Name", "TownOrCity",
                                                                 "PaymentDueDays")})
    state = frame_of(SUPPLIERS, old)
    plain = normalise(SUPPLIERS, raw).frame
    assert rows(normalise(SUPPLIERS, raw, known=state).frame) == rows(plain)
    digests = [record_digest(SUPPLIERS, r) for r in rows(plain).values()]
    assert digests == plain["_digest"].tolist()


def test_trim_false_keeps_spaces_and_matches_its_state() -> None:
    """With trim=False surrounding spaces are data, and the state frame must say the same."""
    raw = source_frame({"Code": ["S1"], "Name": [" padded "]})
    frame = normalise(SUPPLIERS, raw, KindMapping(trim=False)).frame
    assert frame.at["S1", "Name"] == " padded "
    state = canonical_records(SUPPLIERS, [{"Code": "S1", "Name": " padded "}], trim=False)
    assert state.at["S1", "_digest"] == frame.at["S1", "_digest"]
    assert np.array_equal(state.index, frame.index)


def test_the_raw_frame_is_let_go_before_digesting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given its last reference, normalise frees the raw columns once the rejected rows'
    source digests are taken, before the rows are digested here (without a helper process to
    digest them beside the checks); the rejected rows keep theirs."""
    import sync.reference.rules.normalise as normalise_module

    text = pd.ArrowDtype(pa.string())
    raw = pd.DataFrame({"Code": pd.array(["A1", "B2", None], dtype=text),
                        "Name": pd.array([" Abbey ", " Bell ", " Nameless "], dtype=text)})
    alive = weakref.ref(raw["Name"].array)  # trimmed: the canonical column is a new one
    seen: list[bool] = []
    real = normalise_module.row_digests

    def spy(*args: Any, **kwargs: Any) -> Any:
        gc.collect()
        seen.append(alive() is None)
        return real(*args, **kwargs)

    monkeypatch.setattr(normalise_module, "row_digests", spy)
    frames = [raw]
    del raw
    result = normalise(SUPPLIERS, frames.pop())
    assert seen == [True]
    assert list(result.frame.index) == ["A1", "B2"]
    assert list(result.frame["Name"]) == ["Abbey", "Bell"]
    assert [r.row for r in result.rejected] == [3]
    assert result.rejected[0].source_digest


def test_digests_made_beside_the_checks_are_those_made_after_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With a hashing helper and several batches, the rows are digested while the checks run:
    the frame (digests included), the rejections and the warnings are exactly those of
    digesting after the checks. Among the rows: a lower-case IsoCode (the check upper-cases
    it first), a duplicate pair (rejected by the checks after digesting began), a bad IBAN,
    a missing code, a control character, a bad email (a warning)."""
    from connectors import sha_child
    from sync.reference.rules import frame as frame_module
    from sync.reference.rules import keys

    monkeypatch.setattr(keys, "DIGEST_BATCH", 8)
    n = 40
    columns: dict[str, list[Any]] = {
        "Code": [f"S{i:03d}" for i in range(n)], "Name": [f"Supplier {i}" for i in range(n)],
        "IsoCode": ["gb" if i % 3 else "IE" for i in range(n)],
        "Email": [f"s{i}@example.com" for i in range(n)],
        "BankAccountNumber": [None] * n, "PaymentDueDays": list(range(n))}
    columns["Code"][5] = columns["Code"][6].lower()  # s006 and S006 collide
    columns["BankAccountNumber"][9] = "GB33BUKB20201555555556"
    columns["Code"][12] = None
    columns["Name"][20] = "bad \x07 name"
    columns["Email"][30] = "not an email"
    validation = ValidationConfig(bank="reject")
    taken: list[int] = []
    real_take = frame_module.DigestsAhead.take

    def take(self: Any, rows: Any) -> Any:
        taken.append(len(rows))
        return real_take(self, rows)

    monkeypatch.setattr(frame_module.DigestsAhead, "take", take)
    ahead = normalise(SUPPLIERS, source_frame(columns), validation=validation,
                      hasher=sha_child.sha256_batches)
    after = normalise(SUPPLIERS, source_frame(columns), validation=validation)
    assert taken == [len(after.frame)]
    assert rows(ahead.frame) == rows(after.frame)
    assert ahead.rejected == after.rejected
    assert ahead.warnings == after.warnings
    assert {r.reason for r in after.rejected} == {"duplicate_key", "bad_iban", "missing_code",
                                                  "control_chars"}
    assert ahead.frame.at["S001", "IsoCode"] == "GB"
    assert ahead.frame.at["S001", "_digest"] == record_digest(
        SUPPLIERS, {"Code": "S001", "Name": "Supplier 1", "IsoCode": "GB",
                    "Email": "s1@example.com", "PaymentDueDays": 1})


def parallel_case() -> pd.DataFrame:
    """Suppliers with a finding in most columns, and a couple of clean ones."""
    n = 30
    columns: dict[str, list[Any]] = {
        "Code": [f"S{i:03d}" for i in range(n)], "Name": [f" Supplier {i} " for i in range(n)],
        "IsoCode": ["gb" if i % 3 else "XX" for i in range(n)],
        "Email": [f"s{i}@example.com" if i % 7 else "nope" for i in range(n)],
        "AddressLine1": ["caf\u00e9 \u00a0road" if i % 4 else "x" * 500 for i in range(n)],
        "BankAccountNumber": [None if i % 5 else "GB33BUKB20201555555556" for i in range(n)],
        "PaymentDueDays": [i if i % 6 else "soon" for i in range(n)]}
    columns["Code"][3] = None
    columns["Name"][8] = "bell \x07"
    columns["Code"][11] = columns["Code"][12].lower()
    return source_frame(columns)


def test_columns_made_canonical_two_at_a_time_give_the_same_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the row threshold columns are made canonical in two threads: the frame, the
    rejections (in their order) and the warnings are those made one column after another."""
    import sync.reference.rules.normalise as normalise_module

    validation = ValidationConfig(bank="reject")
    one_by_one = normalise(SUPPLIERS, parallel_case(), validation=validation)
    monkeypatch.setattr(normalise_module, "_PARALLEL_ROWS", 0)
    threads: list[str] = []
    real = normalise_module._canonicalise

    def spy(*args: Any) -> None:
        threads.append(threading.current_thread().name)
        real(*args)

    monkeypatch.setattr(normalise_module, "_canonicalise", spy)
    two_at_a_time = normalise(SUPPLIERS, parallel_case(), validation=validation)
    assert threads
    assert all(t.startswith("icsync-normalise") for t in threads)
    assert rows(two_at_a_time.frame) == rows(one_by_one.frame)
    assert two_at_a_time.rejected == one_by_one.rejected
    assert two_at_a_time.warnings == one_by_one.warnings
    assert {r.reason for r in one_by_one.rejected} >= {
        "missing_code", "control_chars", "duplicate_key", "bad_iso_country", "too_long",
        "bad_value", "bad_iban"}


def test_a_bad_default_is_reported_for_the_first_field_either_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two fields with bad defaults: the configuration error names the first field in the
    kind's order, whether columns are made canonical one by one or two at a time."""
    import sync.reference.rules.normalise as normalise_module

    mapping = KindMapping(defaults={"PaymentDueDays": "soon", "Name": "a\x07b"})
    with pytest.raises(ConfigError) as one:
        normalise(SUPPLIERS, parallel_case(), mapping)
    monkeypatch.setattr(normalise_module, "_PARALLEL_ROWS", 0)
    with pytest.raises(ConfigError) as two:
        normalise(SUPPLIERS, parallel_case(), mapping)
    assert str(two.value) == str(one.value)
    assert "Name" in str(one.value)


cells = st.one_of(st.none(), st.text(alphabet="aB1 \u00a0\u00e9\x07@.-", max_size=8),
                  st.integers(-3, 300), st.sampled_from(["gb", "IE", "x" * 300, "s@e.co"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["S1", "s1", "S2", "S3 ", None, "S4", "0S5"]),
                          cells, cells, cells, cells, cells), max_size=14))
def test_the_fast_paths_change_nothing_on_messy_rows(
        rows_: list[tuple[Any, ...]]) -> None:
    """Messy suppliers (missing, duplicate and padded codes, control characters, NBSP,
    over-long text, numbers in text columns, lower-case countries): columns two at a time and
    digests made beside the checks give exactly the frame, rejections and warnings of one
    column at a time with digests made after, clean text columns held as Arrow or not."""
    import sync.reference.rules.normalise as normalise_module
    from connectors import sha_child
    from sync.reference.rules import keys

    def here(batches: Any) -> Any:  # the helper's answers, hashed in this process
        return (None if b is None else sha_child.hash_locally(b) for b in batches)

    names = ["Name", "IsoCode", "Email", "BankSortCode", "PaymentDueDays"]
    frame = source_frame({"Code": [r[0] for r in rows_],
                          **{n: [r[i + 1] for r in rows_] for i, n in enumerate(names)}})
    validation = ValidationConfig(bank="reject")
    plain = normalise(SUPPLIERS, frame.copy(), validation=validation)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(normalise_module, "_PARALLEL_ROWS", 0)
        patch.setattr(normalise_module, "ARROW_TEXT_ROWS", 0)
        patch.setattr(keys, "DIGEST_BATCH", 3)
        fast = normalise(SUPPLIERS, frame.copy(), validation=validation, hasher=here)
    assert rows(fast.frame) == rows(plain.frame)
    assert fast.rejected == plain.rejected
    assert fast.warnings == plain.warnings


def test_a_duplicate_group_names_its_members_by_source_row() -> None:
    """Rows left out before (a blank line, a row the ``where`` filter drops) do not shift the
    row numbers a duplicate's message lists: they are the source's, as each rejection's own."""
    raw = source_frame({"Code": [None, "OLD", "A1", "B2", "a1"],
                        "Name": [None, "old", "a", "b", "c"],
                        "Blocked": [None, "All", "No", "No", "No"]})
    result = normalise(ACCOUNTS, raw, KindMapping(where="Blocked <> 'All'"))
    assert (result.blank, result.filtered) == (1, 1)
    duplicates = [r for r in result.rejected if r.reason == "duplicate_key"]
    assert sorted(r.row for r in duplicates) == [3, 5]
    for r in duplicates:
        assert "'A1' (row 3)" in r.message
        assert "'a1' (row 5)" in r.message


def test_clean_text_columns_held_as_arrow_give_the_same_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the row threshold, a clean text column is held as Arrow and its str objects are
    never made unless something reads them: the frame's values (None where missing), the
    digests, the rejections and the warnings are those of object columns. Held here: the
    clean, unchecked columns (one trimmed in Arrow) and the checked ones whose checks run in
    Arrow (email, IBAN, VAT); made: the key, and a column with a cell the scalar rules mend
    (non-ASCII)."""
    import sync.reference.rules.normalise as normalise_module

    n = 12
    columns: dict[str, list[Any]] = {
        "Code": [f"S{i:03d}" for i in range(n)], "Name": [f"Supplier {i}" for i in range(n)],
        "AddressLine1": [f"{i} High Street" if i % 4 else None for i in range(n)],
        "AddressLine2": [" padded " if i == 3 else "Unit 1" for i in range(n)],
        "TownOrCity": ["K\u00f6ln" if i == 5 else "Leeds" for i in range(n)],
        "IsoCode": ["GB" if i % 2 else "DE" for i in range(n)],
        "Email": [f"s{i}@example.com" if i != 7 else "nope" for i in range(n)],
        "BankAccountNumber": ["GB33BUKB20201555555556" if i == 2 else None for i in range(n)],
        "VatNumber": ["GB980780684" if i % 2 else "DE123" for i in range(n)],
        "PaymentDueDays": list(range(n))}
    validation = ValidationConfig(bank="reject", vat="warn")
    objects = normalise(SUPPLIERS, source_frame(columns), validation=validation)
    monkeypatch.setattr(normalise_module, "ARROW_TEXT_ROWS", 0)
    held = normalise(SUPPLIERS, source_frame(columns), validation=validation)
    assert rows(held.frame) == rows(objects.frame)
    assert held.rejected == objects.rejected
    assert held.warnings == objects.warnings
    assert {r.reason for r in [*held.rejected, *held.warnings]} == {
        "bad_iban", "bad_email", "bad_vat"}
    arrow = {c for c, t in held.frame.dtypes.items() if isinstance(t, pd.ArrowDtype)}
    # VatNumber is checked, then blanked: never sent (its Arrow check: test_columns)
    assert arrow == {"Name", "AddressLine1", "AddressLine2", "IsoCode", "Email",
                     "BankAccountNumber"}
    assert all(t is np.dtype(object) for t in objects.frame.dtypes)
    assert held.frame.at["S004", "AddressLine1"] is pd.NA  # pandas' own read: use
    assert rows(held.frame)["S004"]["AddressLine1"] is None  # column_objects, as the product


def bank_case() -> pd.DataFrame:
    """Suppliers with good and bad IBANs, BICs and VAT numbers (with and without a country),
    some repeated."""
    return source_frame({
        "Code": ["S1", "S2", "S3", "S4", "S5", "S6"], "Name": list("abcdef"),
        "IsoCode": ["GB", "DE", None, "GB", "FR", "GB"],
        "VatNumber": ["GB980780684", "DE136695977", "980780684", "GB980780684", "123", None],
        "BankAccountNumber": ["GB33BUKB20201555555555", "GB33BUKB20201555555556",
                              "DE89370400440532013000", None, "GB33BUKB20201555555555",
                              "DE89370400440532013000"],
        "BankSortCode": ["COBADEFFXXX", "BUKBXX22", None, "NWBKGB2L", "12-34-56",
                         "COBADEFFXXX"]})


@pytest.mark.parametrize("held", [False, True])
def test_values_found_good_before_are_not_judged_again(monkeypatch: pytest.MonkeyPatch,
                                                       held: bool) -> None:
    """A run given the good values of an earlier one asks the libraries only about the
    values not among them (the bad ones, every time), with exactly the same findings; it
    gives back nothing to keep when the good values did not change. The good values are
    distinct, those of this source only."""
    import sync.reference.rules.normalise as normalise_module

    if held:
        monkeypatch.setattr(normalise_module, "ARROW_TEXT_ROWS", 0)
    validation = ValidationConfig(bank="reject", vat="warn")
    calls = judged(monkeypatch)
    first = normalise(SUPPLIERS, bank_case(), validation=validation)
    assert sorted(calls) == [
        ("bic", "BUKBXX22"), ("bic", "COBADEFFXXX"), ("bic", "NWBKGB2L"),
        ("iban", "DE89370400440532013000"), ("iban", "GB33BUKB20201555555555"),
        ("iban", "GB33BUKB20201555555556"), ("vat", "123 FR"), ("vat", "980780684 None"),
        ("vat", "DE136695977 DE"), ("vat", "GB980780684 GB")]  # each distinct value once
    kept = {name: values.to_pylist() for name, values in first.checked.items()}
    assert sorted(kept["iban"]) == ["DE89370400440532013000", "GB33BUKB20201555555555"]
    assert sorted(kept["bic"]) == ["COBADEFFXXX", "NWBKGB2L"]
    assert sorted(kept["vat"]) == ["\t980780684", "GB\tGB980780684"]  # no country: uncheckable
    calls.clear()
    again = normalise(SUPPLIERS, bank_case(), validation=validation, checked=first.checked)
    assert sorted(calls) == [("bic", "BUKBXX22"), ("iban", "GB33BUKB20201555555556"),
                             ("vat", "123 FR"), ("vat", "DE136695977 DE")]
    assert again.rejected == first.rejected
    assert again.warnings == first.warnings
    assert {r.reason for r in [*first.rejected, *first.warnings]} == {
        "bad_iban", "bad_bank", "bad_vat"}
    assert again.checked == {}
    calls.clear()
    fewer = bank_case().iloc[:3]
    third = normalise(SUPPLIERS, fewer, validation=validation, checked=first.checked)
    assert set(third.checked) == {"bic"}  # the same good IBANs and VAT pairs: kept as they are
    assert third.checked["bic"].to_pylist() == ["COBADEFFXXX"]  # NWBKGB2L left the source
    assert sorted(calls) == [("bic", "BUKBXX22"), ("iban", "GB33BUKB20201555555556"),
                             ("vat", "DE136695977 DE")]


def test_a_good_value_given_is_trusted_and_a_bad_one_still_found() -> None:
    """What is given as good is not judged (it is the caller's to give under the rules that
    judged it); a value not given is judged as usual."""
    validation = ValidationConfig(bank="reject")
    raw = supplier(BankAccountNumber="GB33BUKB20201555555556")
    assert reasons(normalise(SUPPLIERS, raw, validation=validation)) == {(1, "BankAccountNumber"):
                                                                         "bad_iban"}
    given = {"iban": pa.array(["GB33BUKB20201555555556"], pa.string())}
    assert normalise(SUPPLIERS, raw, validation=validation, checked=given).rejected == ()
    other = {"iban": pa.array(["GB33BUKB20201555555555"], pa.string())}
    assert reasons(normalise(SUPPLIERS, raw, validation=validation, checked=other)) == {
        (1, "BankAccountNumber"): "bad_iban"}
