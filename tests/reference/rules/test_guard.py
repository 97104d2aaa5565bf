"""The guard: empty, partial and shrunken sources never delete or refresh unasked."""

from __future__ import annotations

import pytest

from sync.foundation.config import GuardConfig
from sync.foundation.errors import ExitCode, GuardBlocked
from sync.reference.rules.diff import diff
from sync.reference.rules.guard import check_guard, guard_plan
from sync.reference.rules.plan import GuardVerdict, KindPlan, plan_kind
from tests.reference.rules.support import SUPPLIERS, frame_of, suppliers


def plan_for(remote: int, source: int, *, new: int = 0, edited: int = 0) -> KindPlan:
    """Suppliers: a state of ``remote`` rows, a source of its first ``source`` plus ``new``."""
    state = frame_of(SUPPLIERS, suppliers(*[f"S{i:05d}" for i in range(remote)]))
    records = suppliers(*[f"S{i:05d}" for i in range(source)], *[f"N{i}" for i in range(new)])
    records = [{**r, "Name": "x"} if i < edited else r for i, r in enumerate(records)]
    frame = frame_of(SUPPLIERS, records)
    return plan_kind(SUPPLIERS, diff(SUPPLIERS, frame, state), frame)


def verdict(plan: KindPlan, *, complete: bool = True, allow: bool = False,
            config: GuardConfig | None = None) -> GuardVerdict:
    """Judge a plan with its own counts."""
    return check_guard("suppliers", "uk", source_count=plan.source_count,
                       remote_count=plan.remote_count, complete=complete, plan=plan,
                       config=config or GuardConfig(), allow=allow)


def test_empty_source_is_blocked_with_the_override() -> None:
    """0 source rows against a non-empty remote is refused, saying how to override."""
    result = verdict(plan_for(100, 0))
    assert (result.allowed, result.rule) == (False, "empty_source")
    assert "--allow-deletes" in result.message
    assert "uk / suppliers" in result.message


def test_partial_read_blocks_deletes_only() -> None:
    """A partial read refuses deletes, but edits alone go ahead."""
    assert verdict(plan_for(100, 98), complete=False).rule == "partial_read"
    edits_only = verdict(plan_for(100, 100, edited=1), complete=False)
    assert edits_only.allowed
    assert edits_only.rule is None


@pytest.mark.parametrize(("remote", "source", "allowed"), [
    (1000, 980, True), (1000, 890, False), (100, 89, False), (100, 91, True),
    (1000, 949, False), (1000, 950, True),
])
def test_shrink_past_either_limit_is_blocked(remote: int, source: int, allowed: bool) -> None:
    """Above 10% or above 50 rows blocks; 2% of 1000 and exactly the limits go ahead."""
    result = verdict(plan_for(remote, source))
    assert result.allowed is allowed
    assert result.rule == (None if allowed else "shrink")


def test_planned_deletes_count_even_when_the_size_holds() -> None:
    """Replacing 60 of 1000 codes deletes 60: blocked although the count is unchanged."""
    result = verdict(plan_for(1000, 940, new=60))
    assert (result.allowed, result.rule) == (False, "shrink")
    assert "60 of 1000 records" in result.message


def test_configured_limits_and_override() -> None:
    """Per-kind limits apply; allow=True proceeds and names the rule it overrode."""
    plan = plan_for(100, 70)
    assert verdict(plan, config=GuardConfig(max_shrink_percent=50, max_shrink_rows=40)).allowed
    overridden = verdict(plan, allow=True)
    assert (overridden.allowed, overridden.rule) == (True, "shrink")
    assert "going ahead" in overridden.message


def test_creates_and_edits_are_never_blocked() -> None:
    """Creates into an empty remote pass even from an incomplete read: nothing can be lost."""
    result = verdict(plan_for(0, 0, new=5), complete=False)
    assert result.allowed
    assert result.rule is None


def test_a_refresh_over_live_records_is_guarded() -> None:
    """A refresh replaces the live set, so a partial read blocks it even without deletes."""
    plan = plan_for(100, 100, new=1)
    assert plan.strategy == "refresh"
    assert not plan.deletes
    assert verdict(plan, complete=False).rule == "partial_read"
    assert verdict(plan).allowed


def test_guard_plan_raises_guard_blocked() -> None:
    """The helper raises GuardBlocked (exit code 3) carrying the rule and message."""
    plan = plan_for(10, 0)
    with pytest.raises(GuardBlocked) as caught:
        guard_plan("suppliers", "uk", source_count=0, remote_count=10, complete=True,
                   plan=plan, config=GuardConfig(), allow=False)
    assert caught.value.rule == "empty_source"
    assert caught.value.exit_code == ExitCode.BLOCKED
    assert "--allow-deletes" in str(caught.value)
    fine = guard_plan("suppliers", "uk", source_count=0, remote_count=10, complete=True,
                      plan=plan, config=GuardConfig(), allow=True)
    assert fine.allowed
