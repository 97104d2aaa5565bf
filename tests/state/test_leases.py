"""Leases and fencing: one holder at a time, growing tokens, stale writers refused."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from sync.foundation.errors import LeaseLost
from sync.state.rows import LeaseLook
from sync.state.store import Fence, QuarantineEntry, StateStore
from tests.state.conftest import OpenStore
from tests.state.test_ledger import race

LONG = 60.0
SHORT = 0.3
# A lease that must still be live for the writes that follow it: on a loaded machine a first
# write to PostgreSQL took longer than SHORT (CI saw LeaseLost on the write before expiry).
WRITES = 1.5


def wait_expired(store: StateStore, name: str, timeout: float = 5.0) -> None:
    """Wait (bounded) until the database says lease ``name`` is no longer live."""
    deadline = time.monotonic() + timeout
    while any(lease.live for lease in store.leases() if lease.name == name):
        assert time.monotonic() < deadline, f"lease {name} still live after {timeout} s"
        time.sleep(0.05)


def test_second_holder_waits_for_the_first(open_store: OpenStore) -> None:
    """While one holder's lease is live, another gets None; the holder sees its row."""
    a, b = open_store(), open_store()
    fence = a.acquire_lease("uk/reference", "host-a:1", LONG)
    assert fence == Fence("uk/reference", "host-a:1", 1)
    assert b.acquire_lease("uk/reference", "host-b:2", LONG) is None
    assert b.acquire_lease("uk/transactions", "host-b:2", LONG) == Fence(
        "uk/transactions", "host-b:2", 1)
    (lease, _) = b.leases()
    assert (lease.name, lease.holder, lease.token, lease.live) == (
        "uk/reference", "host-a:1", 1, True)
    assert lease.expires_at > datetime.now(UTC)


def test_expired_lease_is_taken_with_a_higher_token(open_store: OpenStore) -> None:
    """After expiry another holder takes the lease and its token grows."""
    a, b = open_store(), open_store()
    first = a.acquire_lease("job", "a", SHORT)
    assert first is not None
    wait_expired(b, "job")
    second = b.acquire_lease("job", "b", LONG)
    assert second == Fence("job", "b", first.token + 1)
    assert a.acquire_lease("job", "a", LONG) is None


def test_reacquire_by_the_same_holder_bumps_the_token(store: StateStore) -> None:
    """Acquiring again fences off the holder's own older fence."""
    first = store.acquire_lease("job", "a", LONG)
    second = store.acquire_lease("job", "a", LONG)
    assert first is not None
    assert second is not None
    assert second.token == first.token + 1
    with pytest.raises(LeaseLost):
        store.start_run("uk", "reference", fence=first)


def test_renew_extends_and_fails_once_lost(open_store: OpenStore) -> None:
    """Renewal keeps a lease alive; an expired or taken lease cannot be renewed."""
    a, b = open_store(), open_store()
    fence = a.acquire_lease("job", "a", SHORT)
    assert fence is not None
    assert a.renew_lease(fence, LONG)
    time.sleep(SHORT + 0.1)
    assert b.acquire_lease("job", "b", LONG) is None
    assert a.renew_lease(fence, SHORT)
    wait_expired(a, "job")
    assert not a.renew_lease(fence, LONG)
    taken = b.acquire_lease("job", "b", LONG)
    assert taken is not None
    assert not a.renew_lease(fence, LONG)
    with pytest.raises(ValueError, match="positive"):
        b.renew_lease(taken, 0)


def test_release_frees_the_lease_for_others(open_store: OpenStore) -> None:
    """A released lease is free at once; releasing a lost fence changes nothing."""
    a, b = open_store(), open_store()
    fence = a.acquire_lease("job", "a", LONG)
    assert fence is not None
    a.release_lease(fence)
    taken = b.acquire_lease("job", "b", LONG)
    assert taken == Fence("job", "b", 2)
    a.release_lease(fence)
    assert [(x.holder, x.live) for x in a.leases()] == [("b", True)]


def test_stale_fence_write_raises_and_changes_nothing(open_store: OpenStore) -> None:
    """Every fenced write with a taken-over fence raises LeaseLost and writes nothing."""
    a, b = open_store(), open_store()
    old = a.acquire_lease("uk/reference", "a", WRITES)  # long enough for the two writes
    assert old is not None
    run = a.start_run("uk", "reference", fence=old)
    a.upsert_remote("uk", "suppliers", [("A", {"Code": "A"}, "d1")], fence=old)
    wait_expired(b, "uk/reference")
    new = b.acquire_lease("uk/reference", "b", LONG)
    assert new is not None
    writes: list[Callable[[], object]] = [
        lambda: a.upsert_remote("uk", "suppliers", [("A", {"Code": "X"}, "d2")], fence=old),
        lambda: a.replace_remote("uk", "suppliers", [], fence=old),
        lambda: a.delete_remote("uk", "suppliers", ["A"], fence=old),
        lambda: a.finish_run(run, "ok", {}, fence=old),
        lambda: a.record_intent(run, "uk", "suppliers", "edit", ["A"], "p", fence=old),
        lambda: a.begin_refresh("uk", "suppliers", total_chunks=1, plan_hash="p", fence=old),
        lambda: a.set_append_token("uk", "suppliers", "t", datetime.now(UTC), fence=old),
        lambda: a.quarantine("uk", "suppliers", [QuarantineEntry("Q", "r", "m")], fence=old),
        lambda: a.ledger_seen("C1", "tx", "INV", fence=old),
    ]
    for write in writes:
        with pytest.raises(LeaseLost, match="no longer held"):
            write()
    assert b.remote_records("uk", "suppliers") == {"A": {"Code": "A"}}
    assert b.last_runs()[0].outcome is None
    assert b.open_operations("uk") == []
    assert b.open_refreshes() == []
    assert b.append_token("uk", "suppliers") is None
    assert b.quarantined() == []
    assert b.ledger_rows() == []
    b.upsert_remote("uk", "suppliers", [("A", {"Code": "B"}, "d3")], fence=new)
    assert b.remote_digests("uk", "suppliers") == {"A": "d3"}


def test_expiry_alone_fences_writes(store: StateStore) -> None:
    """A fence whose lease expired (even if nobody took it) can no longer write."""
    fence = store.acquire_lease("job", "a", WRITES)
    assert fence is not None
    store.ledger_seen("C1", "tx-1", "INV", fence=fence)
    wait_expired(store, "job")
    with pytest.raises(LeaseLost):
        store.ledger_transition("C1", "tx-1", expect=["seen"], to="posting", fence=fence)
    assert store.ledger_get("C1", "tx-1").status == "seen"  # type: ignore[union-attr]


def acquire(name: str, store: StateStore) -> Fence | None:
    """Try to take lease ``name`` for this store (its own holder id)."""
    return store.acquire_lease(name, f"holder-{id(store)}", LONG)


def test_simultaneous_acquirers_get_one_lease(open_store: OpenStore) -> None:
    """Five engines racing for a free lease: exactly one wins, every round."""
    stores = [open_store() for _ in range(5)]
    for name in ("job-1", "job-2", "job-3"):
        won = race(stores, functools.partial(acquire, name))
        assert len([f for f in won if f is not None]) == 1


def test_a_host_clock_step_does_not_expire_a_lease(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lease expiry follows the database's clock, not Python's: a 10 minute step changes nothing."""
    fence = store.acquire_lease("job", "a", LONG)
    assert fence is not None
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 600)
    assert store.acquire_lease("job", "b", LONG) is None
    store.upsert_remote("uk", "suppliers", [("A", {}, "d")], fence=fence)
    monkeypatch.setattr(time, "time", lambda: real() - 600)
    assert store.renew_lease(fence, LONG)
    assert store.acquire_lease("job", "b", LONG) is None


def test_lease_time_must_be_positive(store: StateStore) -> None:
    """Zero, negative and non-finite lease times are refused."""
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            store.acquire_lease("job", "a", bad)
    assert store.leases() == []


def test_take_over_waits_for_a_fenced_write_in_flight(open_store: OpenStore) -> None:
    """A write that passed its fence check commits before another holder can take over."""
    a, b = open_store(), open_store()
    fence = a.acquire_lease("job", "a", WRITES)  # long enough for the write to begin
    assert fence is not None
    with ThreadPoolExecutor(1) as pool:
        with a._db.write("fenced write in flight", fence) as conn:
            conn.execute(text("INSERT INTO leases (name, holder, token, expires_at) "
                              "VALUES ('marker', 'a', 1, 0)"))
            time.sleep(WRITES + 0.1)
            taking = pool.submit(b.acquire_lease, "job", "b", LONG)
            time.sleep(0.3)
            assert not taking.done()
        assert taking.result(timeout=20) == Fence("job", "b", fence.token + 1)
    assert "marker" in [lease.name for lease in b.leases()]


def test_a_look_sees_the_lease_free_with_its_token_and_tells_an_unbroken_taking(
        open_store: OpenStore) -> None:
    """A lease never taken looks free with token 0; a live one looks held (None); a released
    or expired one free with its token. The next taking after a look is unbroken; one that
    follows another holder's is not, even when that holder is gone again."""
    a, b = open_store(), open_store()
    look = a.look_lease("uk:reference")
    assert look == LeaseLook("uk:reference", 0)
    fence = b.acquire_lease("uk:reference", "host-b:2", LONG)
    assert fence is not None
    assert look.unbroken(fence)
    assert a.look_lease("uk:reference") is None  # held
    b.release_lease(fence)
    look = a.look_lease("uk:reference")
    assert look == LeaseLook("uk:reference", fence.token)
    other = b.acquire_lease("uk:reference", "host-b:3", SHORT)  # another holding...
    assert other is not None
    wait_expired(a, "uk:reference")  # ...that ended by expiry
    mine = a.acquire_lease("uk:reference", "host-a:1", LONG)
    assert mine is not None
    assert not look.unbroken(mine)
    assert not LeaseLook("uk:transactions", other.token).unbroken(mine)  # another lease
    assert LeaseLook("uk:reference", other.token).unbroken(mine)
