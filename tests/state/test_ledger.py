"""The transaction ledger: insert-once, compare-and-set, due rows, under concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from sync.state.store import StateStore
from tests.state.conftest import OpenStore

T = TypeVar("T")


def race(stores: list[StateStore], action: Callable[[StateStore], T]) -> list[T]:
    """Run ``action`` once per store, all released at the same moment; their results."""
    barrier = threading.Barrier(len(stores), timeout=20)

    def go(store: StateStore) -> T:
        barrier.wait()
        return action(store)

    with ThreadPoolExecutor(len(stores)) as pool:
        return [f.result(timeout=60) for f in [pool.submit(go, s) for s in stores]]


def test_seen_inserts_once_and_returns_the_stored_row(store: StateStore) -> None:
    """A second ledger_seen returns the first row unchanged, even with another type."""
    first = store.ledger_seen("C1", "tx-1", "INV")
    assert (first.status, first.attempts, first.journal_number) == ("seen", 0, None)
    assert store.ledger_transition("C1", "tx-1", expect=["seen"], to="posting")
    again = store.ledger_seen("C1", "tx-1", "CRD")
    assert (again.status, again.tx_type, again.created_at) == ("posting", "INV", first.created_at)
    assert store.ledger_get("C1", "tx-1") == again
    assert store.ledger_get("C2", "tx-1") is None


def test_same_id_in_two_companies_is_two_rows(store: StateStore) -> None:
    """Transaction ids are unique per company, not across companies."""
    store.ledger_seen("C1", "tx-1", "INV")
    store.ledger_seen("C2", "tx-1", "ORD")
    assert [(r.company_id, r.tx_type) for r in store.ledger_rows()] == [
        ("C1", "INV"), ("C2", "ORD")]


def test_seen_race_makes_one_row(open_store: OpenStore) -> None:
    """Four engines recording the same 30 ids at once leave exactly 30 rows."""
    stores = [open_store() for _ in range(4)]
    ids = [f"tx-{i}" for i in range(30)]
    results = race(stores, lambda s: [s.ledger_seen("C1", i, "INV") for i in ids])
    rows = stores[0].ledger_rows("C1")
    assert sorted(r.transaction_id for r in rows) == sorted(ids)
    assert all(result == results[0] for result in results)


def test_transition_is_compare_and_set(store: StateStore) -> None:
    """A transition applies only from an expected status, with its fields."""
    store.ledger_seen("C1", "tx-1", "INV")
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert not store.ledger_transition("C1", "tx-1", expect=["posting"], to="posted")
    assert store.ledger_transition("C1", "tx-1", expect=["seen"], to="posting", attempts=1,
                                   next_attempt_at=later, last_error="timeout")
    assert store.ledger_transition("C1", "tx-1", expect=["seen", "posting"], to="posted",
                                   journal_number="J0001", next_attempt_at=None, last_error=None)
    row = store.ledger_get("C1", "tx-1")
    assert row is not None
    assert (row.status, row.journal_number, row.attempts, row.next_attempt_at, row.last_error) == (
        "posted", "J0001", 1, None, None)
    assert row.updated_at >= row.created_at
    assert not store.ledger_transition("C1", "missing", expect=["seen"], to="posting")


def test_transition_race_has_one_winner(open_store: OpenStore) -> None:
    """Four engines moving the same row seen -> posting at once: exactly one succeeds."""
    stores = [open_store() for _ in range(4)]
    stores[0].ledger_seen("C1", "tx-1", "INV")
    won = race(stores, lambda s: s.ledger_transition("C1", "tx-1", expect=["seen"], to="posting"))
    assert sorted(won) == [False, False, False, True]


def test_transition_arguments_are_checked(store: StateStore) -> None:
    """Unknown statuses and fields, and naive times, are refused before any write."""
    store.ledger_seen("C1", "tx-1", "INV")
    with pytest.raises(ValueError, match="ledger status"):
        store.ledger_transition("C1", "tx-1", expect=["seen"], to="done")
    with pytest.raises(ValueError, match="journal"):
        store.ledger_transition("C1", "tx-1", expect=["seen"], to="posted", journal="J1")
    with pytest.raises(ValueError, match="naive"):
        store.ledger_transition("C1", "tx-1", expect=["seen"], to="posting",
                                next_attempt_at=datetime(2030, 1, 1))
    assert store.ledger_get("C1", "tx-1").status == "seen"  # type: ignore[union-attr]


def test_rows_filter_by_company_and_status(store: StateStore) -> None:
    """ledger_rows filters by company and by a set of statuses, oldest first."""
    for tx in ("a", "b", "c"):
        store.ledger_seen("C1", tx, "INV")
    store.ledger_seen("C2", "z", "ORD")
    store.ledger_transition("C1", "b", expect=["seen"], to="quarantined", last_error="closed")
    assert [r.transaction_id for r in store.ledger_rows("C1")] == ["a", "b", "c"]
    assert [r.transaction_id for r in store.ledger_rows("C1", ["quarantined"])] == ["b"]
    assert [r.transaction_id for r in store.ledger_rows(status=["seen"])] == ["a", "c", "z"]


def test_due_rows(store: StateStore) -> None:
    """Due: unfinished rows not waiting, and quarantined ones whose retry time came."""
    now = datetime.now(UTC)
    for tx in ("new", "backoff", "posted", "done", "parked", "retry"):
        store.ledger_seen("C1", tx, "INV")
    store.ledger_seen("C2", "other", "INV")
    move = store.ledger_transition
    move("C1", "backoff", expect=["seen"], to="posting", next_attempt_at=now + timedelta(hours=1))
    move("C1", "posted", expect=["seen"], to="posted", journal_number="J1")
    move("C1", "done", expect=["seen"], to="written_back", journal_number="J2")
    move("C1", "parked", expect=["seen"], to="quarantined")
    move("C1", "retry", expect=["seen"], to="quarantined", next_attempt_at=now)
    assert sorted(r.transaction_id for r in store.ledger_due("C1", now)) == [
        "new", "posted", "retry"]
    later = now + timedelta(hours=2)
    assert sorted(r.transaction_id for r in store.ledger_due("C1", later)) == [
        "backoff", "new", "posted", "retry"]
    assert [r.transaction_id for r in store.ledger_due("C2")] == ["other"]
