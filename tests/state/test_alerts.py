"""Alert conditions and the outbox, on SQLite and PostgreSQL, with several instances at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sync.state.alerts import Finding
from sync.state.store import StateStore
from tests.state.conftest import OpenStore

GUARD = Finding("guard_block:uk", "guard_block", "uk", "uk: guard blocked", "shrank 30%")


def digest(*items: str) -> Finding:
    """A quarantine digest over ``items``."""
    return Finding("quarantine:uk", "quarantine", "uk", "uk: quarantined", "rows held",
                   items, {i: f"- {i}: bad" for i in items})


def test_a_condition_starts_once_and_clears_once(store: StateStore) -> None:
    """Seen again it queues nothing; gone, one clear; back, a new start."""
    scope = ["guard_block:uk"]
    assert store.alert_observe(scope, [GUARD]) == ["start:guard_block:uk"]
    assert store.alert_observe(scope, [GUARD]) == []
    assert store.alert_observe(scope, []) == ["clear:guard_block:uk"]
    assert store.alert_observe(scope, []) == []
    assert store.alert_observe(scope, [GUARD]) == ["start:guard_block:uk"]
    events = [m.event for m in reversed(store.alert_messages())]
    assert events == ["start", "clear", "start"]


def test_a_digest_lists_only_new_items(store: StateStore) -> None:
    """New rows make one update listing them alone; rows already told are not repeated."""
    scope = ["quarantine:uk"]
    store.alert_observe(scope, [digest("a")])
    assert store.alert_observe(scope, [digest("a", "b")]) == ["update:quarantine:uk"]
    assert store.alert_observe(scope, [digest("b")]) == []
    update = store.alert_messages()[0]  # newest first
    assert "- b: bad" in update.body
    assert "- a: bad" not in update.body


def test_instances_observing_together_queue_one_start(open_store: OpenStore) -> None:
    """Four instances seeing the same condition at once queue exactly one start."""
    stores = [open_store() for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        events = list(pool.map(lambda s: s.alert_observe(["guard_block:uk"], [GUARD]), stores))
    assert sorted(e for found in events for e in found) == ["start:guard_block:uk"]
    assert len(stores[0].alert_messages()) == 1


def test_claims_are_exclusive_and_released_at_shutdown(open_store: OpenStore) -> None:
    """Two senders never claim the same message; released claims can be taken again."""
    one, two = open_store(), open_store()
    for n in range(3):
        one.note_capability_change(f"r{n}.list", "paging", "token", "page")
    first = one.alert_claim("a", per_hour=10, limit=2)
    second = two.alert_claim("b", per_hour=10)
    assert len(first) == 2
    assert len(second) == 1
    assert {m.id for m in first}.isdisjoint({m.id for m in second})
    assert two.alert_claim("b", per_hour=10) == []
    one.alert_release("a")
    assert len(two.alert_claim("b", per_hour=10)) == 2


def test_delivered_channels_are_remembered_and_failures_wait(store: StateStore) -> None:
    """A retry knows which channel took the message; a failed message is due later."""
    store.alert_observe(["guard_block:uk"], [GUARD])
    (message,) = store.alert_claim("a", per_hour=10)
    store.alert_delivered(message.id, "a", "chan-1")
    later = datetime.now(UTC) + timedelta(hours=1)
    store.alert_retry(message.id, "a", "chan-2: 500", later)
    assert store.alert_claim("a", per_hour=10) == []
    (waiting,) = store.alert_messages(pending=True)
    assert waiting.delivered == ("chan-1",)
    assert (waiting.attempts, waiting.last_error) == (1, "chan-2: 500")


def test_the_hourly_budget_counts_every_instance(open_store: OpenStore) -> None:
    """Messages sent by one instance count against the others' budget."""
    one, two = open_store(), open_store()
    for n in range(3):
        one.note_capability_change(f"r{n}.list", "paging", "token", "page")
    for message in one.alert_claim("a", per_hour=2):
        one.alert_sent(message.id, "a")
    assert two.alert_claim("b", per_hour=2) == []
    assert len(two.alert_claim("b", per_hour=3)) == 1


def test_sent_messages_are_pruned_after_the_given_days(store: StateStore) -> None:
    """Old sent messages are forgotten; unsent ones are kept whatever their age."""
    store.alert_observe(["guard_block:uk"], [GUARD])
    store.alert_observe(["guard_block:uk"], [])
    first, _ = store.alert_claim("a", per_hour=10)
    store.alert_sent(first.id, "a")
    assert store.alert_prune(30) == 0
    assert store.alert_prune(-1) == 1
    assert [m.event for m in store.alert_messages()] == ["clear"]


def test_a_stale_observation_changes_nothing(store: StateStore) -> None:
    """Instances check the same state: one reads at t1 (the alarm holds), an operator resolves,
    another reads at t2 and clears first. The first one's record, read earlier, neither starts
    the alarm again nor updates a digest; a later read does start it."""
    import time

    scope = ["guard_block:uk"]
    t0 = store.alert_clock()
    assert abs(t0 - time.time()) < 60  # the database's clock, in seconds since the epoch
    assert store.alert_observe(scope, [GUARD], seen_at=t0) == ["start:guard_block:uk"]
    t1, t2 = t0 + 1, t0 + 2
    assert store.alert_observe(scope, [], seen_at=t2) == ["clear:guard_block:uk"]
    assert store.alert_observe(scope, [GUARD], seen_at=t1) == []
    assert [c.key for c in store.alert_conditions()] == []
    assert store.alert_observe(scope, [GUARD], seen_at=t2 + 1) == ["start:guard_block:uk"]
    assert [m.event for m in reversed(store.alert_messages())] == ["start", "clear", "start"]

    items = ["quarantine:uk"]
    assert store.alert_observe(items, [digest("a")], seen_at=t0 + 10) == ["start:quarantine:uk"]
    assert store.alert_observe(items, [digest("a", "b")], seen_at=t0 + 5) == []  # stale
    assert store.alert_observe(items, [digest("a", "b")], seen_at=t0 + 11) == [
        "update:quarantine:uk"]
    assert store.alert_observe(items, [digest("a", "b")]) == []  # no time said: as before
