"""Runs, the operations journal and quarantine."""

from __future__ import annotations

import pytest

from sync.foundation.errors import StateError
from sync.state.store import QuarantineEntry, StateStore


def test_run_start_finish_and_listing(store: StateStore) -> None:
    """A run starts open, finishes with outcome and counts; newest first, per company."""
    first = store.start_run("uk", "reference", "suppliers")
    second = store.start_run("ie", "transactions")
    store.finish_run(first, "partial", {"created": 3, "rejected": {"too_long": 1}}, "1 rejected")
    runs = store.last_runs()
    assert [r.id for r in runs] == [second, first]
    assert runs[0].outcome is None
    assert runs[0].finished_at is None
    assert runs[0].kind is None
    done = store.last_runs("uk")[0]
    assert (done.job, done.kind, done.outcome, done.error) == (
        "reference", "suppliers", "partial", "1 rejected")
    assert done.counts == {"created": 3, "rejected": {"too_long": 1}}
    assert done.finished_at is not None
    assert done.finished_at >= done.started_at
    assert len(store.last_runs(limit=1)) == 1


def test_a_run_names_its_holder_from_the_start(store: StateStore) -> None:
    """A run started by an instance says whose it is while it runs (and if its instance is
    killed and never finishes it); the counts written at the end replace the start's."""
    run = store.start_run("uk", "transactions", holder="vm:4242:abcd")
    assert store.last_runs("uk")[0].counts == {"holder": "vm:4242:abcd"}
    store.finish_run(run, "ok", {"holder": "vm:4242:abcd", "posted": 2})
    assert store.last_runs("uk")[0].counts == {"holder": "vm:4242:abcd", "posted": 2}


def test_finish_unknown_run_is_refused(store: StateStore) -> None:
    """Finishing a run id that does not exist is a caller error."""
    with pytest.raises(ValueError, match="no run 999"):
        store.finish_run(999, "ok", {})


def test_intent_then_outcome(store: StateStore) -> None:
    """An intent is open until its outcome; unknown stays open; settled closes it."""
    run = store.start_run("uk", "reference")
    a = store.record_intent(run, "uk", "suppliers", "edit", ["A"], "pa")
    b = store.record_intent(run, "uk", "suppliers", "refresh", ["B", "C"], "pb")
    c = store.record_intent(run, "uk", "tax_codes", "delete", ["T"], "pc")
    store.record_outcome(a, "done")
    store.record_outcome(b, "unknown", "timeout after 30 s")
    open_ops = store.open_operations("uk", "suppliers")
    assert [(o.id, o.status, o.keys, o.detail) for o in open_ops] == [
        (b, "unknown", ("B", "C"), "timeout after 30 s")]
    assert [o.id for o in store.open_operations("uk")] == [b, c]
    assert store.open_operations("ie") == []
    store.record_outcome(b, "settled", "read back: applied")
    store.record_outcome(c, "failed", "HTTP 400")
    assert store.open_operations("uk") == []


def test_outcome_status_is_checked(store: StateStore) -> None:
    """Only done, failed, unknown and settled are outcomes; unknown ids are refused."""
    op = store.record_intent(None, "uk", "suppliers", "edit", ["A"], "p")
    with pytest.raises(ValueError, match="operation status"):
        store.record_outcome(op, "intent")
    with pytest.raises(ValueError, match="no operation"):
        store.record_outcome(op + 100, "done")


def test_intent_for_a_missing_run_is_a_state_error(store: StateStore) -> None:
    """The journal's run must exist (foreign key), and the error says state failed."""
    with pytest.raises(StateError, match="journalling"):
        store.record_intent(12345, "uk", "suppliers", "edit", ["A"], "p")


def test_quarantine_upserts_by_key_and_origin(store: StateStore) -> None:
    """Quarantining again updates reason and last_seen, keeps first_seen, and reopens."""
    entry = QuarantineEntry("S1", "too_long", "Name: 120 > 100 characters", "Name", "validation",
                            "src1")
    store.quarantine("uk", "suppliers", [entry])
    store.quarantine("uk", "suppliers", [QuarantineEntry("S1", "rejected", "ErrorCode 12",
                                                         origin="remote")])
    (first,) = store.quarantined("uk", "suppliers", status=None)[:1]
    assert store.set_quarantine_status([first.id], "resolved") == 1
    store.quarantine("uk", "suppliers", [QuarantineEntry(
        "S1", "bad_vat", "VAT: invalid", "VatNumber", "validation", "src2")])
    rows = store.quarantined("uk", "suppliers")
    assert [(r.key, r.origin, r.reason, r.status) for r in rows] == [
        ("S1", "validation", "bad_vat", "open"), ("S1", "remote", "rejected", "open")]
    again = rows[0]
    assert (again.id, again.field, again.source_digest) == (first.id, "VatNumber", "src2")
    assert again.first_seen == first.first_seen
    assert again.last_seen >= first.last_seen


def test_quarantine_filters_and_status(store: StateStore) -> None:
    """Rows filter by company, kind and status; the operator status is validated."""
    store.quarantine("uk", "suppliers", [QuarantineEntry("A", "r", "m"),
                                         QuarantineEntry("B", "r", "m")])
    store.quarantine("ie", "tax_codes", [QuarantineEntry("T", "r", "m")])
    store.quarantine("uk", "tax_codes", [])
    ids = [r.id for r in store.quarantined("uk")]
    assert len(ids) == 2
    assert len(store.quarantined()) == 3
    assert store.set_quarantine_status(ids[:1], "retry") == 1
    assert [r.key for r in store.quarantined(status="retry")] == ["A"]
    assert [r.key for r in store.quarantined(kind="tax_codes")] == ["T"]
    with pytest.raises(ValueError, match="quarantine status"):
        store.set_quarantine_status(ids, "gone")
    with pytest.raises(ValueError, match="origin"):
        store.quarantine("uk", "suppliers", [QuarantineEntry("C", "r", "m", origin="erp")])


def test_clear_quarantine_by_key_and_origin(store: StateStore) -> None:
    """Clearing removes the given keys, of one origin when named."""
    store.quarantine("uk", "suppliers", [QuarantineEntry("A", "r", "m"),
                                         QuarantineEntry("B", "r", "m"),
                                         QuarantineEntry("A", "r", "m", origin="remote")])
    store.clear_quarantine("uk", "suppliers", ["A"], origin="remote")
    assert [(r.key, r.origin) for r in store.quarantined()] == [
        ("A", "validation"), ("B", "validation")]
    store.clear_quarantine("uk", "suppliers", ["A", "B"])
    assert store.quarantined() == []
