"""The transaction ledger's rules as pure functions: states, transitions, decisions, backoff.

Every approved iCompleat transaction gets one ledger row, moved through::

    seen ──> posting ──> posted(journal) ──> written_back
      │         │   ╲        │
      │         │    ╲──> seen          (the ERP was unreachable: try again next pass)
      ╰─────────┴──────> quarantined ──> posting   (retried with backoff, a bounded number of times)

``seen`` is committed BEFORE the ERP is touched and each later step right after it happens, so a
process killed anywhere leaves a row that says what to do next (:func:`decide`). The IO that
carries these decisions out lives in :mod:`sync.transactions.poll`; nothing here touches a database.
The value objects it reports with (:class:`TxOutcome`, :class:`PollResult`) live here too.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.foundation.errors import ExitCode

SEEN = "seen"
POSTING = "posting"
POSTED = "posted"
WRITTEN_BACK = "written_back"
QUARANTINED = "quarantined"
STATUSES = (SEEN, POSTING, POSTED, WRITTEN_BACK, QUARANTINED)

# Which status may follow which. Jumps to written_back happen when iCompleat already shows the
# same journal number; jumps to quarantined when the ERP refuses or the journal numbers disagree.
TRANSITIONS: dict[str, frozenset[str]] = {
    SEEN: frozenset({POSTING, WRITTEN_BACK, QUARANTINED}),
    POSTING: frozenset({POSTED, SEEN, WRITTEN_BACK, QUARANTINED}),
    POSTED: frozenset({WRITTEN_BACK, QUARANTINED}),
    WRITTEN_BACK: frozenset({QUARANTINED}),
    QUARANTINED: frozenset({POSTING, WRITTEN_BACK}),
}


class Action(enum.Enum):
    """What the poller (or the webhook) does next with one transaction."""

    POST = "post"              # no ERP entry known: post it (find-or-create)
    SETTLE = "settle"          # a post was in flight (or died): look it up in the ERP first
    WRITE_BACK = "write_back"  # the ERP has it: record the journal number in iCompleat
    CONFIRM = "confirm"        # iCompleat already shows our journal number: close the row
    ADOPT = "adopt"            # iCompleat shows a journal number we never recorded: check the ERP
    ALARM = "alarm"            # iCompleat and the ledger disagree on the journal number
    WAIT = "wait"              # quarantined and not due yet (or out of retries)
    DONE = "done"              # nothing left to do


def allowed(src: str, dst: str) -> bool:
    """True when ``dst`` may follow ``src``."""
    return dst in TRANSITIONS.get(src, frozenset())


def expect_for(dst: str) -> tuple[str, ...]:
    """Every status from which ``dst`` may be reached (the ``expect`` of a compare-and-set)."""
    return tuple(src for src in STATUSES if allowed(src, dst))


def decide(
    status: str | None, ledger_journal: str | None, remote_journal: str | None, *, due: bool,
) -> Action:
    """The next action for a transaction, from its ledger row (None: no row) and iCompleat."""
    if remote_journal is not None:
        return _decide_remote(status, ledger_journal, remote_journal)
    if status in (None, SEEN):
        return Action.POST
    if status == POSTING:
        return Action.SETTLE
    if status in (POSTED, WRITTEN_BACK):
        return Action.WRITE_BACK
    return Action.POST if due else Action.WAIT


def _decide_remote(status: str | None, ledger_journal: str | None, remote: str) -> Action:
    if ledger_journal is not None and ledger_journal != remote:
        return Action.ALARM if status != QUARANTINED else Action.WAIT
    if status == WRITTEN_BACK:
        return Action.DONE
    if status == POSTED:
        return Action.CONFIRM
    return Action.ADOPT


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for transactions the ERP refused: ``base * 2**(n-1)``, capped, jittered, bounded.

    After ``max_attempts`` refusals the row stays quarantined with no next attempt until an
    operator retries or resolves it.
    """

    base_seconds: float = 60.0
    max_seconds: float = 6 * 3600.0
    max_attempts: int = 5
    jitter: float = 0.2


def next_attempt_at(
    attempts: int, now: datetime, policy: RetryPolicy = RetryPolicy(),
    rng: random.Random | None = None,
) -> datetime | None:
    """When to retry after ``attempts`` refusals, or None when the retries are used up."""
    if attempts >= policy.max_attempts:
        return None
    delay = min(policy.base_seconds * 2 ** max(attempts - 1, 0), policy.max_seconds)
    spread = (rng or random).uniform(0, policy.jitter) if policy.jitter else 0.0
    return now + timedelta(seconds=delay * (1 + spread))


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a naive one from the database is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def is_due(next_at: datetime | None, now: datetime) -> bool:
    """True when a quarantined row's next attempt time has come (None: never, retries used up)."""
    return next_at is not None and as_utc(next_at) <= as_utc(now)


# How ``icsync errors resolve`` marks a quarantined row an operator has dealt with (last_error).
RESOLVED_PREFIX = "resolved by an operator"


def is_open_quarantine(status: str, last_error: str | None) -> bool:
    """True for a quarantined row nobody has resolved yet (it keeps a poll's exit code at 4)."""
    return status == QUARANTINED and not (last_error or "").startswith(RESOLVED_PREFIX)


JOURNAL_CONFLICT_MARK = "iCompleat already shows journal number"


def is_journal_conflict(last_error: str | None) -> bool:
    """True when a ledger row's error is the journal-number alarm of :func:`journal_conflict`."""
    return JOURNAL_CONFLICT_MARK in (last_error or "") and not (last_error or "").startswith(
        RESOLVED_PREFIX)


def journal_conflict(transaction_id: str, ours: str, theirs: str) -> str:
    """The alarm text when iCompleat shows another journal number than the ERP gave."""
    return (f"transaction {transaction_id}: {JOURNAL_CONFLICT_MARK} {theirs!r} but "
            f"the ERP posted it as {ours!r}; not overwritten. Check both systems, correct the "
            f"wrong one, then resolve this entry with `icsync errors resolve`.")


@dataclass(frozen=True)
class TxOutcome:
    """Where one transaction stands after a :class:`Poster` call (``status``: ledger status)."""

    transaction_id: str
    status: str
    journal_number: str | None = None
    posted: bool = False      # the ERP entry was made or found by this call
    created: bool = False     # ... and made by it
    wrote_back: bool = False  # the journal number was recorded in iCompleat by this call
    failed: bool = False      # a passing problem (ERP or API down): the next pass retries
    detail: str | None = None


@dataclass
class PollResult:
    """One company's poll pass. ``quarantined`` counts every open quarantined transaction."""

    company: str
    outcome: str = "ok"
    seen: int = 0
    posted: int = 0
    created: int = 0
    written_back: int = 0
    quarantined: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    fatal_code: ExitCode | None = None

    MAX_PROBLEMS = 50

    @property
    def exit_code(self) -> ExitCode:
        """0 ok, 4 when something is quarantined or failed, else the fatal error's code."""
        if self.fatal_code is not None:
            return self.fatal_code
        return ExitCode.PARTIAL if self.quarantined or self.failed else ExitCode.OK

    def fail(self, outcome: str, code: ExitCode, error: str) -> None:
        """Record the error that ended the pass early (``outcome``: "failed" or "auth")."""
        self.outcome, self.fatal_code, self.error = outcome, code, error

    def finish(self, quarantined: int, seconds: float) -> None:
        """Close the pass: open quarantine size, duration, and "partial" if anything is left."""
        self.quarantined, self.seconds = quarantined, round(seconds, 3)
        if self.outcome == "ok" and (quarantined or self.failed):
            self.outcome = "partial"

    def problem(self, text: str) -> None:
        """Note a problem for the operator (the first few are kept)."""
        if len(self.problems) < self.MAX_PROBLEMS:
            self.problems.append(text)

    def count(self, outcome: TxOutcome) -> None:
        """Add one transaction's outcome to the totals."""
        self.seen += 1
        self.posted += outcome.posted
        self.created += outcome.created
        self.written_back += outcome.wrote_back
        self.failed += outcome.failed
        if outcome.detail and (outcome.failed or outcome.status == QUARANTINED):
            self.problem(outcome.detail)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        names = ("company", "outcome", "seen", "posted", "created", "written_back",
                 "quarantined", "failed", "skipped", "seconds", "error", "problems")
        return {**{n: getattr(self, n) for n in names}, "exit_code": int(self.exit_code)}
