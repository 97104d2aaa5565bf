"""The sandbox's pure parts: validation rules, record sets, tokens and the fault board."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.icompleat.sandbox import Fault, FaultBoard
from connectors.icompleat.sandbox.persist import MemoryStore, SqliteStore
from connectors.icompleat.sandbox.store import RecordSet, Tokens
from connectors.icompleat.sandbox.validate import (
    check_base_currency,
    check_text,
    clean_definition,
    clean_record,
)
from sync.foundation.entities import get_kind
from sync.foundation.errors import BadContinuationToken, ValidationFailed


def test_text_rules() -> None:
    """Empty optional text is absent; required text, overlong text and control chars fail."""
    assert check_text("", where="r", field="F", max_length=5) is None
    assert check_text("abc", where="r", field="F", max_length=5) == "abc"
    with pytest.raises(ValidationFailed, match="required"):
        check_text(None, where="r", field="F", max_length=5, required=True)
    with pytest.raises(ValidationFailed, match="U\\+0009") as caught:
        check_text("a\tb", where="r", field="F", max_length=5)
    assert caught.value.field == "F"


def test_record_is_cleaned_per_kind() -> None:
    """Absent, null and empty optional fields are left out; typed fields keep their type."""
    kind = get_kind("suppliers")
    clean = clean_record(kind, {"Code": "S", "Name": "n", "Email": "", "Telephone": None,
                                "PaymentDueDays": 30.0}, "Suppliers[0]")
    assert clean == {"Code": "S", "Name": "n", "PaymentDueDays": 30}
    assert isinstance(clean["PaymentDueDays"], int)


def test_base_currency_needs_rate_one_and_one_base() -> None:
    """A base with another rate, two bases, or none in a complete set are refused."""
    kind = get_kind("currencies")
    with pytest.raises(ValidationFailed) as caught:
        clean_record(kind, {"Code": "GBP", "Name": "p", "Rate": 2, "IsBase": True}, "c")
    assert caught.value.field == "Rate"
    gbp, eur = {"Code": "GBP", "IsBase": True}, {"Code": "EUR", "IsBase": False}
    check_base_currency([gbp, eur], complete=True, where="c")
    check_base_currency([eur], complete=False, where="c")
    for records, complete in (([gbp, {**eur, "IsBase": True}], False), ([eur], True)):
        with pytest.raises(ValidationFailed, match="IsBase"):
            check_base_currency(records, complete=complete, where="c")


def test_partial_definition_keeps_only_what_was_sent() -> None:
    """A partial custom field edit carries only the properties in the body."""
    assert clean_definition({"Mandatory": True}, "f", partial=True) == {"Mandatory": True}
    assert clean_definition({"Name": "P"}, "f") == {"Name": "P", "Type": "List",
                                                    "Mandatory": False, "Active": True}


def test_record_set_orders_by_code_and_counts_generations() -> None:
    """Pages read in code order; replace starts a generation, merge does not."""
    records = RecordSet("scope", MemoryStore())
    records.merge([{"Code": "b"}, {"Code": "a"}, {"Code": "c"}])
    assert [r["Code"] for r in records.page(1, 2)] == ["a", "b"]
    assert records.page(3, 2) == []
    assert records.replace([{"Code": "z"}]) == 1
    assert [r["Code"] for r in records] == ["z"]
    assert (records.remove("z"), records.remove("z")) == (True, False)


def test_record_set_reloads_from_sqlite(tmp_path: Path) -> None:
    """A set written to SQLite comes back with its records and generation."""
    store = SqliteStore(tmp_path / "s.db")
    RecordSet("scope", store).replace([{"Code": "a", "Name": "x"}])
    store.close()
    reopened = SqliteStore(tmp_path / "s.db")
    again = RecordSet("scope", reopened)
    reopened.close()
    assert (list(again), again.generation) == ([{"Code": "a", "Name": "x"}], 1)


def test_tokens_expire_slide_and_follow_their_set() -> None:
    """A token works until its TTL passes without use, and only for its set's generation."""
    store = MemoryStore()
    first, other = RecordSet("one", store), RecordSet("two", store)
    tokens = Tokens(store)
    token = tokens.issue(first, now=0, ttl=10)
    tokens.extend(token, first, now=9, ttl=10)
    tokens.extend(token, first, now=18, ttl=10)
    for target, now, words in ((other, 19, "another list"), (first, 29, "expired")):
        with pytest.raises(BadContinuationToken, match=words):
            tokens.extend(token, target, now=now, ttl=10)
    fresh = tokens.issue(first, now=30, ttl=10)
    first.replace([])
    with pytest.raises(BadContinuationToken, match="newer refresh"):
        tokens.extend(fresh, first, now=31, ttl=10)


def test_fault_board_after_times_and_one_shot_changes() -> None:
    """after/times bound when a fault fires; a list change and a rotation fire once."""
    board = FaultBoard(seed=1)
    board.set("r", Fault(error_rate=1.0, after=1, times=2, change_after_page=2,
                         change_remove=["X"]))
    assert [board.decide("r").error_status for _ in range(4)] == [None, 500, 500, None]
    assert board.take_list_change("r", 1) is None
    assert board.take_list_change("r", 2) is not None
    assert board.take_list_change("r", 2) is None
    board.rotate_key_at("t", 2, "new-key-1")
    assert [len(board.arrive()) for _ in range(3)] == [0, 1, 0]
