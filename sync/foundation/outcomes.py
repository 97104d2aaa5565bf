"""How a run ends: one enum of outcomes, each with its exit code, and "the worst" written once.

Outcomes are strings in the state DB and in JSON (``Outcome`` is a ``StrEnum``, so
``Outcome.OK == "ok"``). Severity follows the exit codes, worst first: credentials rejected,
bad configuration, failed, blocked by the guard, partial, ok. The daemon's bookkeeping outcomes
(skipped, stopped, lease lost, cancelled, error) rank with the exit code they stand for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from sync.foundation.errors import ExitCode

# Worst first: what a process exits with when its companies (or kinds) end differently.
EXIT_SEVERITY: tuple[ExitCode, ...] = (ExitCode.AUTH, ExitCode.CONFIG, ExitCode.FAILED,
                                       ExitCode.BLOCKED, ExitCode.PARTIAL, ExitCode.OK)


class Outcome(StrEnum):
    """The outcome of a run, a company or a kind."""

    OK = "ok"
    PARTIAL = "partial"
    BLOCKED = "blocked"
    FAILED = "failed"
    AUTH = "auth"
    # The daemon's bookkeeping outcomes of a scheduled run.
    SKIPPED = "skipped"
    STOPPED = "stopped"
    LEASE_LOST = "lease_lost"
    CANCELLED = "cancelled"
    ERROR = "error"

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code this outcome stands for."""
        return _EXIT_CODES[self]


_EXIT_CODES: dict[Outcome, ExitCode] = {
    Outcome.OK: ExitCode.OK, Outcome.PARTIAL: ExitCode.PARTIAL, Outcome.BLOCKED: ExitCode.BLOCKED,
    Outcome.FAILED: ExitCode.FAILED, Outcome.AUTH: ExitCode.AUTH, Outcome.SKIPPED: ExitCode.OK,
    Outcome.STOPPED: ExitCode.OK, Outcome.LEASE_LOST: ExitCode.FAILED,
    Outcome.CANCELLED: ExitCode.FAILED, Outcome.ERROR: ExitCode.FAILED,
}
# Failed runs (they count towards /readyz's failure streak) and healthy ones (they reset it).
FAILING = frozenset({Outcome.FAILED, Outcome.AUTH, Outcome.ERROR})
HEALTHY = frozenset({Outcome.OK, Outcome.PARTIAL, Outcome.BLOCKED})


def worst_exit(codes: Iterable[int]) -> ExitCode:
    """The most severe of ``codes`` (OK when there are none)."""
    found = {ExitCode(c) for c in codes}
    return next((code for code in EXIT_SEVERITY if code in found), ExitCode.OK)


def worst(outcomes: Iterable[str]) -> Outcome:
    """The most severe of ``outcomes`` (``ok`` for none); ties keep the first."""
    rank = {code: i for i, code in enumerate(EXIT_SEVERITY)}
    found = [Outcome(o) for o in outcomes]
    return min(found, key=lambda o: rank[o.exit_code], default=Outcome.OK)


def counts_line(counts: Mapping[str, Any]) -> str:
    """One line of the non-zero per-kind counts of a run record (``counts["kinds"]``)."""
    kinds = counts.get("kinds")
    if not isinstance(kinds, Mapping):
        return ""
    parts = []
    for kind, numbers in sorted(kinds.items()):
        shown = ", ".join(f"{k} {v}" for k, v in numbers.items() if v)
        parts.append(f"{kind}: {shown or 'no change'}")
    return "; ".join(parts)
