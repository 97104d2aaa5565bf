"""The ledger's pure rules: transitions, decisions, backoff."""

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from sync.transactions import rules as ledger
from sync.transactions.rules import Action, RetryPolicy, decide, next_attempt_at

NOW = datetime(2025, 3, 30, 1, 30, tzinfo=UTC)


def test_happy_path_transitions_are_allowed() -> None:
    """seen -> posting -> posted -> written_back is the normal way through."""
    path = [ledger.SEEN, ledger.POSTING, ledger.POSTED, ledger.WRITTEN_BACK]
    assert all(ledger.allowed(a, b) for a, b in itertools.pairwise(path))


def test_no_going_back_from_posted() -> None:
    """A posted row never returns to seen or posting: that could post it twice."""
    assert not ledger.allowed(ledger.POSTED, ledger.SEEN)
    assert not ledger.allowed(ledger.POSTED, ledger.POSTING)
    assert not ledger.allowed(ledger.WRITTEN_BACK, ledger.POSTING)


def test_expect_for_lists_every_source_status() -> None:
    """The compare-and-set into posting accepts seen and quarantined only."""
    assert set(ledger.expect_for(ledger.POSTING)) == {ledger.SEEN, ledger.QUARANTINED}
    assert ledger.POSTED not in ledger.expect_for(ledger.POSTING)


@pytest.mark.parametrize(("status", "ours", "remote", "due", "action"), [
    (None, None, None, False, Action.POST),
    (ledger.SEEN, None, None, False, Action.POST),
    (ledger.POSTING, None, None, False, Action.SETTLE),
    (ledger.POSTED, "J1", None, False, Action.WRITE_BACK),
    (ledger.WRITTEN_BACK, "J1", None, False, Action.WRITE_BACK),
    (ledger.QUARANTINED, None, None, True, Action.POST),
    (ledger.QUARANTINED, None, None, False, Action.WAIT),
    (None, None, "J9", False, Action.ADOPT),
    (ledger.POSTING, None, "J9", False, Action.ADOPT),
    (ledger.POSTED, "J9", "J9", False, Action.CONFIRM),
    (ledger.WRITTEN_BACK, "J9", "J9", False, Action.DONE),
    (ledger.POSTED, "J1", "J9", False, Action.ALARM),
    (ledger.WRITTEN_BACK, "J1", "J9", False, Action.ALARM),
    (ledger.QUARANTINED, "J1", "J9", True, Action.WAIT),
])
def test_decide(status: str | None, ours: str | None, remote: str | None, due: bool,
                action: Action) -> None:
    """Each combination of ledger row and iCompleat's journal number has one next action."""
    assert decide(status, ours, remote, due=due) is action


def test_backoff_doubles_and_is_capped() -> None:
    """Delays double per refusal, stop at the cap, and stop altogether after max attempts."""
    policy = RetryPolicy(base_seconds=10, max_seconds=35, max_attempts=4, jitter=0)
    delays = [next_attempt_at(n, NOW, policy) for n in range(1, 6)]
    assert [(d - NOW).total_seconds() if d else None for d in delays] == [10, 20, 35, None, None]


def test_backoff_jitter_stays_within_bounds() -> None:
    """Jitter only ever lengthens a delay, by at most the configured fraction."""
    policy = RetryPolicy(base_seconds=100, jitter=0.2)
    rng = random.Random(7)
    for _ in range(50):
        at = next_attempt_at(1, NOW, policy, rng)
        assert at is not None
        assert timedelta(seconds=100) <= at - NOW <= timedelta(seconds=120)


def test_is_due_treats_naive_times_as_utc() -> None:
    """A naive time read back from SQLite compares as UTC; None is never due."""
    assert ledger.is_due(datetime(2025, 3, 30, 1, 0), NOW)
    assert not ledger.is_due(datetime(2025, 3, 30, 2, 0), NOW)
    assert not ledger.is_due(None, NOW)


def test_conflict_message_names_both_numbers_and_what_to_do() -> None:
    """The alarm text names the transaction, both journal numbers and the way out."""
    text = ledger.journal_conflict("tx-1", "J1", "J9")
    for part in ("tx-1", "'J1'", "'J9'", "resolve"):
        assert part in text


def test_open_quarantine_excludes_resolved_rows() -> None:
    """A row an operator resolved is no longer an open quarantine; other statuses never are."""
    assert ledger.is_open_quarantine(ledger.QUARANTINED, "ERP refused it")
    assert not ledger.is_open_quarantine(ledger.QUARANTINED, f"{ledger.RESOLVED_PREFIX} on x")
    assert not ledger.is_open_quarantine(ledger.POSTED, None)
