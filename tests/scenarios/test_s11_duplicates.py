"""S11 at the pure level: duplicate codes, including case, whitespace and zero-padding variants.

Colliding keys are rejected as a group and listed; nothing is written for them (not even a delete
of a remote record they collide with); two runs give identical plans; the rest converges.
"""

from __future__ import annotations

import random

import pandas as pd

from sync.reference.rules.keys import collision_key
from tests.reference.rules.model import Remote, check, run
from tests.reference.rules.support import ACCOUNTS, source_frame

GROUPS = [["ABC", "abc", " ABC "], ["0042", "42", "042"], ["X-1", "x-1"], ["DUP", "DUP"]]
CLEAN = [f"A{i:03d}" for i in range(250)]


def erp(order_seed: int | None = None) -> pd.DataFrame:
    """Clean account codes plus every colliding group, in a given row order."""
    codes = [*CLEAN, *(c for group in GROUPS for c in group)]
    if order_seed is not None:
        random.Random(order_seed).shuffle(codes)
    return source_frame({"Code": codes, "Name": [f"Account {c.strip()}" for c in codes]})


def remote_with_old_variants() -> Remote:
    """A remote that already holds one variant of two groups (from before they collided)."""
    remote = Remote(ACCOUNTS)
    remote.records = {"ABC": {"Code": "ABC", "Name": "Old ABC"},
                      "00042": {"Code": "00042", "Name": "Old 42"}}
    return remote


def test_colliding_groups_are_rejected_whole_and_listed() -> None:
    """Every member of every group is rejected, and each message lists its whole group."""
    result = run(remote_with_old_variants(), erp())
    rejected = [r for r in result.normalised.rejected if r.reason == "duplicate_key"]
    assert len(rejected) == sum(len(g) for g in GROUPS)
    for group in GROUPS:
        members = [r for r in rejected if r.key is not None
                   and collision_key(r.key) == collision_key(group[0])]
        assert len(members) == len(group)
        for member in members:
            assert all(repr(code) in member.message for code in group)
    assert result.normalised.frame.index.tolist() == CLEAN


def test_no_write_touches_a_colliding_key() -> None:
    """The remote's old variants are neither edited nor deleted; no group member is created."""
    remote = remote_with_old_variants()
    result = run(remote, erp())
    assert result.verdict.allowed
    assert result.plan.diff.held == ("00042", "ABC")
    assert remote.records["ABC"] == {"Code": "ABC", "Name": "Old ABC"}
    assert remote.records["00042"] == {"Code": "00042", "Name": "Old 42"}
    sent = {k for chunk in result.plan.chunks for k in chunk}
    assert sent == {*CLEAN, "ABC", "00042"}  # the refresh keeps the held records as they were
    report = check(remote, result.normalised.frame, allowed_extra={"ABC", "00042"})
    assert report.ok


def test_two_runs_give_identical_plans_in_any_row_order() -> None:
    """Two runs over one source plan the same, hash included; row order changes only the row
    numbers the rejections cite, never which rows are held or what is sent."""
    first, second = (run(remote_with_old_variants(), erp(1)).company_plan() for _ in range(2))
    assert first.plan_hash == second.plan_hash
    kinds = {str(run(remote_with_old_variants(), erp(seed)).company_plan().to_dict()["kinds"])
             for seed in (None, 1, 2, 3)}
    assert len(kinds) == 1


def test_second_run_writes_nothing() -> None:
    """After the first run, the same source makes zero calls; fixing the ERP releases a group."""
    remote = remote_with_old_variants()
    run(remote, erp())
    again = run(remote, erp())
    assert sum(again.calls.values()) == 0
    fixed = erp()
    fixed.loc[fixed["Code"].isin(["abc", " ABC "]), "Code"] = ["ABD", "ABE"]
    after = run(remote, fixed)
    assert {"ABD", "ABE"} <= set(remote.records)
    assert remote.records["ABC"]["Name"] == "Account ABC"
    assert not any(r.key in ("ABC", "ABD", "ABE") for r in after.normalised.rejected)
