"""S09 at the pure level: an empty, partial or shrunken source never deletes or refreshes unasked.

Each case starts from a remote of 1,000 suppliers in step with the state, plans a run from the
faulty source, and applies what the guard lets through to a model of the remote.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.reference.rules.model import Remote, check, run
from tests.reference.rules.support import SUPPLIERS, source_frame

ROWS = 1000


def erp(n: int, *, first: int = 0, renamed: int = 0) -> pd.DataFrame:
    """The ERP's suppliers S00000.. (``renamed`` of them with a new name)."""
    codes = [f"S{i:05d}" for i in range(first, first + n)]
    names = [f"Supplier {c}" + (" (renamed)" if i < renamed else "") for i, c in enumerate(codes)]
    return source_frame({"Code": codes, "Name": names, "TownOrCity": ["Leeds"] * n})


@pytest.fixture
def remote() -> Remote:
    """A remote holding the ERP's 1,000 suppliers, as a first clean run leaves it."""
    model = Remote(SUPPLIERS)
    first = run(model, erp(ROWS))
    assert first.calls == {"refresh": 10}
    return model


@pytest.mark.parametrize(("source", "complete", "rule"), [
    (erp(0), True, "empty_source"),
    (erp(ROWS // 2, renamed=3), False, "partial_read"),
    (erp(700, renamed=2), True, "shrink"),
])
def test_faulty_sources_are_blocked(remote: Remote, source: pd.DataFrame, complete: bool,
                                    rule: str) -> None:
    """0 rows, a read that failed half way, a 30% shrink: blocked, no delete or refresh sent."""
    before = dict(remote.records)
    result = run(remote, source, complete=complete)
    assert not result.verdict.allowed
    assert result.verdict.rule == rule
    assert "--allow-deletes" in result.verdict.message
    assert result.calls["delete"] == result.calls["refresh"] == 0
    assert result.plan.deletes == ()
    assert result.plan.strategy != "refresh"
    assert set(remote.records) == set(before)
    edited = {k for k, r in remote.records.items() if r != before[k]}
    assert edited == {e.key for e in result.plan.diff.edits}
    assert result.calls["edit"] == len(edited)


def test_small_shrink_goes_ahead_and_converges(remote: Remote) -> None:
    """A 2% shrink on 1,000 rows is allowed; the remote then equals the source; rerun is empty."""
    source = erp(980, renamed=5)
    result = run(remote, source)
    assert result.verdict.allowed
    assert result.verdict.rule is None
    assert result.plan.targeted_calls == 25
    assert result.calls == {"refresh": 10}  # 980 rows: cheaper than 5 edits + 20 deletes
    expected = run(Remote(SUPPLIERS), source).normalised.frame
    assert check(remote, expected).ok
    again = run(remote, source)
    assert sum(again.calls.values()) == 0
    assert again.plan.strategy == "none"


def test_override_lets_the_shrink_through(remote: Remote) -> None:
    """With --allow-deletes the 30% shrink is applied and the remote equals the source."""
    source = erp(700)
    result = run(remote, source, allow=True)
    assert (result.verdict.allowed, result.verdict.rule) == (True, "shrink")
    assert result.calls == {"refresh": 7}  # cheaper than 300 deletes
    assert check(remote, run(Remote(SUPPLIERS), source).normalised.frame).ok


def test_blocked_creates_wait_for_a_refresh(remote: Remote) -> None:
    """New records that need a refresh are deferred, not sent, while the guard blocks."""
    source = pd.concat([erp(700), erp(5, first=5000)], ignore_index=True)
    result = run(remote, source)
    assert not result.verdict.allowed
    assert len(result.plan.deferred) == 5
    assert sum(result.calls.values()) == 0
    assert len(remote.records) == ROWS
