"""Alert conditions, as pure functions: what a finished run or the state DB says is wrong now.

Each check returns a :class:`Check`: the condition keys it covered (``scope``) and the
:class:`~sync.state.alerts.Finding` of each one that holds. The state store turns the difference
with what it remembers into one start message and one clear message per condition
(:meth:`sync.state.alerts.AlertStore.alert_observe`). The conditions, each switchable under
``[alerts]``:

============================  ===========================================================
``guard_block:C``             the last reference run of company C was blocked by the guard
``failing:C:J``               job J of C failed ``failing_runs_count`` runs in a row
``credentials``               iCompleat rejected the security key (exit 5)
``quarantine:C``              C has open quarantined records or transactions (a digest: new
                              rows are listed once, in one message per check)
``journal_mismatch:C``        iCompleat shows another journal number than the ERP gave
``lease_lost:C:J``            a run of J lost its lease to another instance
``ledger_backlog:C``          a transaction has waited longer than ``ledger_backlog_minutes``
``capability:R:X``            iCompleat's route R changed capability X (recorded by the
                              route-capability code through ``note_capability_change``)
============================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sync.foundation.config import AlertsConfig
from sync.state.alerts import Finding
from sync.state.rows import LedgerRow, QuarantineRow, RunRow
from sync.transactions.rules import is_journal_conflict, is_open_quarantine

FAILING = frozenset({"failed", "auth", "error"})
NOT_A_VERDICT = frozenset({"skipped", "stopped", "cancelled"})
WAITING = ("seen", "posting", "posted")
CONDITIONS = ("guard_block", "failing_runs", "credentials", "quarantine", "journal_mismatch",
              "lease_lost", "ledger_backlog", "capability")


@dataclass(frozen=True)
class Check:
    """The keys a check covered and what it found among them."""

    scope: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()

    def __add__(self, other: Check) -> Check:
        return Check(self.scope + other.scope, self.findings + other.findings)


@dataclass(frozen=True)
class RunFacts:
    """A finished run as the checks need it."""

    company: str
    job: str
    outcome: str
    error: str | None = None
    history: Sequence[RunRow] = field(default_factory=tuple)


def condition_of(key: str) -> str:
    """The configuration name of the condition a key belongs to."""
    head = key.split(":", 1)[0]
    return "failing_runs" if head == "failing" else head


def enabled(check: Check, alerts: AlertsConfig) -> Check:
    """Only the conditions switched on under ``[alerts]``."""
    def on(key: str) -> bool:
        return bool(getattr(alerts, condition_of(key), True))

    return Check(tuple(k for k in check.scope if on(k)),
                 tuple(f for f in check.findings if on(f.key)))


def is_failed_run(row: RunRow) -> bool:
    """A run that counts towards a failure streak: it failed, or it was partial because calls
    or a dependency failed (not merely because rows were rejected or quarantined, which the
    quarantine digest reports)."""
    if row.outcome in FAILING:
        return True
    if row.outcome != "partial":
        return False
    kinds = row.counts.get("kinds")
    counts = list(kinds.values()) if isinstance(kinds, Mapping) else []
    if any(isinstance(c, Mapping) and c.get("failed") for c in counts):
        return True
    held = any(isinstance(c, Mapping) and (c.get("rejected") or c.get("quarantined"))
               for c in counts)
    return bool(row.error) and not held


def check_run(run: RunFacts, alerts: AlertsConfig) -> Check:
    """Guard block, failure streak, rejected credentials and lease loss, after one run."""
    if run.outcome in NOT_A_VERDICT:
        return Check()
    checks = [_lease_lost(run)]
    if run.outcome != "lease_lost":
        checks += [_credentials(run), _streak(run, alerts.failing_runs_count)]
        if run.job == "reference":
            checks.append(_guard(run))
    total = Check()
    for check in checks:
        total += check
    return total


def _guard(run: RunFacts) -> Check:
    key = f"guard_block:{run.company}"
    if run.outcome != "blocked":
        return Check((key,))
    title = f"{run.company}: the guard blocked the reference sync"
    detail = (f"{title}: {run.error or 'a destructive change was refused'}. iCompleat keeps its "
              "last data until this is fixed: check the ERP source, or allow the change as the "
              "message says.")
    return Check((key,), (Finding(key, "guard_block", run.company, title, detail),))


def _credentials(run: RunFacts) -> Check:
    key = "credentials"
    if run.outcome != "auth":
        return Check((key,))
    title = "iCompleat rejected the security key"
    detail = (f"{title} (HTTP 401) during {run.company}'s {run.job} job; the daemon stopped "
              "(exit 5). Install a valid key where the configuration reads it, then start "
              "icsync again.")
    return Check((key,), (Finding(key, "credentials", "icompleat", title, detail),))


def _streak(run: RunFacts, limit: int) -> Check:
    key = f"failing:{run.company}:{run.job}"
    finished = [r for r in run.history if r.job == run.job and r.outcome is not None]
    last = finished[:limit]
    if len(last) < limit or not all(is_failed_run(r) for r in last):
        return Check((key,))
    title = f"{run.company}: the {run.job} job failed {limit} runs in a row"
    detail = f"{title}; the last error: {last[0].error or last[0].outcome}"
    return Check((key,), (Finding(key, "failing_runs", f"{run.company}:{run.job}", title,
                                  detail),))


def _lease_lost(run: RunFacts) -> Check:
    key = f"lease_lost:{run.company}:{run.job}"
    if run.outcome != "lease_lost":
        return Check((key,))
    title = f"{run.company}: a {run.job} run lost its lease to another instance"
    detail = (f"{title}; it stopped writing at once and the other instance carries on. If this "
              f"repeats, the state DB is slow or this host pauses. {run.error or ''}").strip()
    return Check((key,), (Finding(key, "lease_lost", f"{run.company}:{run.job}", title,
                                  detail),))


def check_state(company: str, company_id: str, quarantined: Sequence[QuarantineRow],
                ledger: Sequence[LedgerRow], now: datetime, alerts: AlertsConfig) -> Check:
    """Quarantine digest, journal number mismatches and the ledger backlog of one company."""
    rows = [r for r in ledger if r.company_id == company_id]
    records = [q for q in quarantined if q.company == company and q.status == "open"]
    return (_quarantine(company, records, rows) + _journal(company, rows)
            + _backlog(company, rows, now, alerts.ledger_backlog_minutes))


def _quarantine(company: str, records: Sequence[QuarantineRow],
                ledger: Sequence[LedgerRow]) -> Check:
    key = f"quarantine:{company}"
    lines: dict[str, str] = {}
    for q in records:
        lines[f"{q.kind}/{q.key}/{q.origin}"] = f"- {q.kind} {q.key}: {q.reason}: {q.message}"
    for t in ledger:
        if is_open_quarantine(t.status, t.last_error) and not is_journal_conflict(t.last_error):
            lines[f"transactions/{t.transaction_id}"] = (
                f"- transaction {t.transaction_id}: {t.last_error or 'refused by the ERP'}")
    if not lines:
        return Check((key,))
    title = f"{company}: {len(lines)} quarantined record(s) or transaction(s)"
    detail = (f"{title}. They are held back until fixed at the source or in the ERP; "
              "`icsync errors list` (or the console) shows them, `icsync errors retry` "
              "sends them again.")
    return Check((key,), (Finding(key, "quarantine", company, title, detail,
                                  tuple(sorted(lines)), lines),))


def _journal(company: str, ledger: Sequence[LedgerRow]) -> Check:
    key = f"journal_mismatch:{company}"
    bad = {t.transaction_id: f"- {t.last_error}" for t in ledger
           if t.status == "quarantined" and is_journal_conflict(t.last_error)}
    if not bad:
        return Check((key,))
    title = f"{company}: journal numbers differ between iCompleat and the ERP"
    detail = (f"{title} for {len(bad)} transaction(s). Nothing was overwritten: correct the "
              "wrong system, then `icsync errors resolve`.")
    return Check((key,), (Finding(key, "journal_mismatch", company, title, detail,
                                  tuple(sorted(bad)), bad),))


def _backlog(company: str, ledger: Sequence[LedgerRow], now: datetime,
             minutes: float) -> Check:
    key = f"ledger_backlog:{company}"
    waiting = [t for t in ledger if t.status in WAITING]
    if not waiting:
        return Check((key,))
    oldest = min(waiting, key=lambda t: t.created_at)
    age = (now - oldest.created_at).total_seconds() / 60
    if age < minutes:
        return Check((key,))
    title = f"{company}: transactions have waited over {minutes:g} minutes for the ERP"
    detail = (f"{title}: {len(waiting)} waiting, the oldest ({oldest.transaction_id}, "
              f"{oldest.status}) for {age:.0f} minutes. Check the transactions job and the ERP.")
    return Check((key,), (Finding(key, "ledger_backlog", company, title, detail),))


def backlog_age(ledger: Sequence[LedgerRow], now: datetime) -> Mapping[str, float]:
    """Seconds the oldest waiting transaction of each company id has waited."""
    ages: dict[str, float] = {}
    for t in ledger:
        if t.status in WAITING:
            age = (now - t.created_at).total_seconds()
            ages[t.company_id] = max(ages.get(t.company_id, 0.0), age)
    return ages
