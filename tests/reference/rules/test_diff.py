"""The diff: creates, field-level edits, deletes, holds, and its properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.reference.rules.diff import Edit, FieldChange, KindDiff, apply_diff, diff
from tests.fixtures.profiles import examples
from tests.reference.rules.support import SUPPLIERS, frame_of, rows, supplier_records, suppliers


def test_creates_edits_deletes_and_unchanged() -> None:
    """Each key lands in exactly one bucket, sorted, with field-level before and after."""
    state = frame_of(SUPPLIERS, [*suppliers("A", "B", "C"), {"Code": "D", "Name": "old",
                                                             "PaymentDueDays": 30}])
    source = frame_of(SUPPLIERS, [*suppliers("E", "B", "A"), {"Code": "D", "Name": "new",
                                                              "PaymentDueDays": "30.0"}])
    d = diff(SUPPLIERS, source, state)
    assert d == KindDiff("suppliers", creates=("E",), deletes=("C",), unchanged=2,
                         edits=(Edit("D", (FieldChange("Name", "old", "new"),)),))
    assert d.remote_count == 4
    assert not d.is_empty
    assert d.edited_keys == ("D",)


def test_field_changes_cover_set_and_cleared_values() -> None:
    """Setting and clearing a value are changes from/to None."""
    state = frame_of(SUPPLIERS, suppliers("A", Email="a@b.co"))
    source = frame_of(SUPPLIERS, suppliers("A", TownOrCity="Leeds"))
    (edit,) = diff(SUPPLIERS, source, state).edits
    assert set(edit.changes) == {FieldChange("Email", "a@b.co", None),
                                 FieldChange("TownOrCity", None, "Leeds")}


def test_hold_leaves_state_rows_alone() -> None:
    """Held keys (and state keys colliding with them) are neither created, edited nor deleted."""
    state = frame_of(SUPPLIERS, [*suppliers("0042", "B", "C"), {"Code": "H", "Name": "old"}])
    source = frame_of(SUPPLIERS, [*suppliers("B", "N"), {"Code": "H", "Name": "new"}])
    d = diff(SUPPLIERS, source, state, hold=["42", "042", "H", "N"])
    assert d.creates == ()
    assert d.edits == ()
    assert d.deletes == ("C",)
    assert d.held == ("0042", "H")
    assert d.unchanged == 1
    assert d.remote_count == 4


def test_unsorted_frames_are_sorted_and_duplicates_refused() -> None:
    """Input order does not matter; a frame with duplicate keys is an error."""
    state = frame_of(SUPPLIERS, suppliers("A", "B"))
    source = frame_of(SUPPLIERS, suppliers("C", "A")).iloc[::-1]
    assert diff(SUPPLIERS, source, state).creates == ("C",)
    twice = frame_of(SUPPLIERS, suppliers("A"))
    doubled = twice.iloc[[0, 0]]
    with pytest.raises(ValueError, match="duplicate keys"):
        diff(SUPPLIERS, doubled, state)


def test_empty_sides() -> None:
    """Everything is a create against an empty state and a delete from an empty source."""
    full, empty = frame_of(SUPPLIERS, suppliers("A", "B")), frame_of(SUPPLIERS, [])
    assert diff(SUPPLIERS, full, empty).creates == ("A", "B")
    assert diff(SUPPLIERS, empty, full).deletes == ("A", "B")
    assert diff(SUPPLIERS, empty, empty).is_empty


def test_to_dict_is_plain_data() -> None:
    """The diff serialises to plain lists and dicts."""
    state = frame_of(SUPPLIERS, suppliers("A"))
    source = frame_of(SUPPLIERS, suppliers("A", Email="x@y.z"))
    assert diff(SUPPLIERS, source, state).to_dict()["edits"] == [
        {"key": "A", "changes": [{"field": "Email", "before": None, "after": "x@y.z"}]}]


@settings(max_examples=examples(150), deadline=None)
@given(supplier_records(), supplier_records())
def test_applying_the_diff_gives_the_source(old: list[dict[str, Any]],
                                            new: list[dict[str, Any]]) -> None:
    """apply_diff(state, source, diff(source, state)) equals the source."""
    state, source = frame_of(SUPPLIERS, old), frame_of(SUPPLIERS, new)
    d = diff(SUPPLIERS, source, state)
    assert rows(apply_diff(SUPPLIERS, state, source, d)) == rows(source)
    assert len(d.creates) + len(d.edits) + d.unchanged == len(source)
    assert d.remote_count == len(state)


@settings(max_examples=examples(100), deadline=None)
@given(supplier_records())
def test_identical_frames_have_an_empty_diff(records: list[dict[str, Any]]) -> None:
    """A frame compared with itself (or an equal copy) has nothing to do."""
    d = diff(SUPPLIERS, frame_of(SUPPLIERS, records), frame_of(SUPPLIERS, records[::-1]))
    assert d.is_empty
    assert d.unchanged == len(records)


@settings(max_examples=examples(100), deadline=None)
@given(supplier_records(), supplier_records(), st.lists(st.sampled_from("ABC0"), max_size=3))
def test_held_rows_survive_apply(old: list[dict[str, Any]], new: list[dict[str, Any]],
                                 hold: list[str]) -> None:
    """After applying a diff with holds, held state rows are exactly as they were."""
    state, source = frame_of(SUPPLIERS, old), frame_of(SUPPLIERS, new)
    d = diff(SUPPLIERS, source, state, hold=hold)
    after = rows(apply_diff(SUPPLIERS, state, source, d))
    before = rows(state)
    assert all(after[k] == before[k] for k in d.held)
    assert not set(d.held) & {*d.creates, *d.deletes, *d.edited_keys}


def test_a_source_with_text_held_as_arrow_diffs_applies_and_sends_as_objects(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A large source's frame keeps clean text columns Arrow-backed: its diff (edits' before
    and after None where missing, never pd.NA), the state it leaves and the records it sends
    are exactly those of the same frame made of objects."""
    import pandas as pd

    import sync.reference.rules.normalise as normalise_module
    from sync.reference.apply import frame_records
    from sync.reference.rules.normalise import normalise
    from tests.reference.rules.support import source_frame

    state = frame_of(SUPPLIERS, [
        {"Code": "A", "Name": "Abbey", "Email": "a@x.com"},
        {"Code": "B", "Name": "Bell", "Telephone": "0113"},
        {"Code": "C", "Name": "Crane"}])
    raw = source_frame({"Code": ["A", "B", "D"], "Name": ["Abbey", "Bell Ltd", "Dale"],
                        "Email": [None, "b@x.com", None], "Telephone": [None, "0113", "0114"]})
    objects = normalise(SUPPLIERS, raw.copy()).frame
    monkeypatch.setattr(normalise_module, "ARROW_TEXT_ROWS", 0)
    held = normalise(SUPPLIERS, raw.copy()).frame
    assert {c for c, t in held.dtypes.items() if isinstance(t, pd.ArrowDtype)} == {
        "Name", "Email", "Telephone"}
    changed = diff(SUPPLIERS, held, state)
    assert changed == diff(SUPPLIERS, objects, state)
    assert changed.edits == (Edit("A", (FieldChange("Email", "a@x.com", None),)),
                             Edit("B", (FieldChange("Name", "Bell", "Bell Ltd"),
                                        FieldChange("Email", None, "b@x.com"))))
    assert rows(apply_diff(SUPPLIERS, state, held, changed)) == rows(
        apply_diff(SUPPLIERS, state, objects, changed))
    records, digests = frame_records(SUPPLIERS, held)
    assert (records, digests) == frame_records(SUPPLIERS, objects)
    assert records["A"] == {"Code": "A", "Name": "Abbey"}
    assert all(v is not pd.NA for r in records.values() for v in r.values())
    assert frame_records(SUPPLIERS, held.loc[["D"]]) == frame_records(
        SUPPLIERS, objects.loc[["D"]])
