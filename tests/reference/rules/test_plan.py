"""The plan: the cost model, strategies, delete policies, custom fields and the plan hash."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.reference.rules.diff import diff
from sync.reference.rules.findings import Rejection
from sync.reference.rules.plan import (
    GuardVerdict,
    KindPlan,
    Plan,
    chunks_of,
    plan_custom_fields,
    plan_kind,
    restricted,
)
from tests.fixtures.profiles import examples
from tests.reference.rules.support import (
    FIELDS,
    SUPPLIERS,
    frame_of,
    supplier_records,
    suppliers,
    value_key,
)


def codes(prefix: str, n: int) -> list[str]:
    """n sortable codes."""
    return [f"{prefix}{i:04d}" for i in range(n)]


def planned(old: list[str], new: list[str], edited: tuple[str, ...] = (), **kw: Any) -> KindPlan:
    """Plan suppliers ``new`` (with ``edited`` renamed) against a state of ``old``."""
    state = frame_of(SUPPLIERS, suppliers(*old))
    records = [{**r, "Name": "renamed"} if r["Code"] in edited else r for r in suppliers(*new)]
    source = frame_of(SUPPLIERS, records)
    return plan_kind(SUPPLIERS, diff(SUPPLIERS, source, state), source, **kw)


def test_nothing_to_do_is_none() -> None:
    """An unchanged source plans zero calls."""
    plan = planned(codes("S", 5), codes("S", 5))
    assert (plan.strategy, plan.calls, plan.chunks) == ("none", 0, ())


def test_edits_and_deletes_are_targeted() -> None:
    """A few edits and deletes cost one call each."""
    plan = planned(codes("S", 300), codes("S", 299), edited=("S0001", "S0002"))
    assert (plan.strategy, plan.calls, plan.targeted_calls, plan.refresh_calls) == (
        "targeted", 3, 3, 3)


def test_creates_without_a_token_force_a_refresh() -> None:
    """New records cannot be sent one by one: without an append token only a refresh can."""
    plan = planned(codes("S", 250), codes("S", 251))
    assert (plan.strategy, plan.targeted_calls, plan.calls) == ("refresh", None, 3)
    assert [len(c) for c in plan.chunks] == [100, 100, 51]
    assert plan.chunks[0][0] == "S0000"
    assert plan.chunks[-1][-1] == "S0250"


def test_creates_with_a_token_are_appended() -> None:
    """With a valid continuation token, new records go in append chunks of 100."""
    plan = planned(codes("S", 250), codes("S", 401), can_append=True)
    assert (plan.strategy, plan.calls, plan.targeted_calls, plan.refresh_calls) == (
        "targeted", 2, 2, 5)
    assert [len(c) for c in plan.chunks] == [100, 51]


def test_cheaper_refresh_wins_and_ties_go_targeted() -> None:
    """Many edits on a small set are cheaper as a refresh; an equal count stays targeted."""
    many = planned(codes("S", 150), codes("S", 150), edited=tuple(codes("S", 3)))
    assert (many.strategy, many.calls, many.targeted_calls) == ("refresh", 2, 3)
    tie = planned(codes("S", 150), codes("S", 150), edited=tuple(codes("S", 2)))
    assert (tie.strategy, tie.calls) == ("targeted", 2)


def test_ignore_policy_keeps_remote_records() -> None:
    """Under 'ignore' nothing is deleted, and a refresh keeps the records in its set."""
    quiet = planned(codes("S", 10), codes("S", 8), delete_policy="ignore")
    assert (quiet.strategy, quiet.calls, quiet.deletes, quiet.deletes_suppressed) == (
        "none", 0, (), 2)
    plan = planned(codes("S", 10), [*codes("S", 8), "T1"], delete_policy="ignore")
    assert plan.strategy == "refresh"
    assert plan.kept == ("S0008", "S0009")
    assert set(plan.chunks[0]) == {*codes("S", 10), "T1"}
    assert plan.is_destructive


def test_force() -> None:
    """A forced refresh re-sends everything; a forced impossible targeted plan is an error."""
    plan = planned(codes("S", 3), codes("S", 3), force="refresh")
    assert (plan.strategy, plan.calls, plan.forced) == ("refresh", 1, True)
    with pytest.raises(ValueError, match="continuation token"):
        planned(codes("S", 3), codes("S", 4), force="targeted")
    with pytest.raises(ValueError, match="force must be"):
        planned(codes("S", 3), codes("S", 3), force="none")


def test_restricted_plan_never_deletes_or_refreshes() -> None:
    """What a blocked kind may still do: edits (and appendable creates), nothing destructive."""
    state = frame_of(SUPPLIERS, suppliers(*codes("S", 10)))
    source = frame_of(SUPPLIERS, [{"Code": "S0001", "Name": "x"}, *suppliers("N1")])
    d = diff(SUPPLIERS, source, state)
    full = plan_kind(SUPPLIERS, d, source)
    assert full.strategy == "refresh"
    assert full.is_destructive
    safe = restricted(SUPPLIERS, full, source)
    assert (safe.strategy, safe.calls, safe.deletes, safe.deferred) == (
        "targeted", 1, (), ("N1",))
    assert not safe.is_destructive
    appending = restricted(SUPPLIERS, full, source, can_append=True)
    assert (appending.calls, appending.deferred) == (2, ())


def fields(rows: list[tuple[str, str, str, str]]) -> Any:
    """A custom-field frame from (field, code, name, type) rows."""
    return frame_of(FIELDS, [{"Field": f, "Code": c, "Name": n, "Type": t} for f, c, n, t in rows])


def test_custom_fields_plan_definitions_and_value_sets() -> None:
    """New fields in one POST, edited definitions one PUT each, changed value sets re-sent."""
    state = fields([("Dept", "A", "a", "List"), ("Dept", "B", "b", "List"),
                    ("Proj", "P", "p", "List"), ("Old", "O", "o", "List"),
                    ("Kind", "K", "k", "List")])
    source = fields([("Dept", "A", "a", "List"), ("Dept", "C", "c", "List"),
                     ("Proj", "P", "p", "Date"), ("New", "N", "n", "List"),
                     ("Kind", "K", "k", "List")])
    d = diff(FIELDS, source, state)
    plan = plan_custom_fields(FIELDS, d, source, state)
    assert plan.field_creates == ("New",)
    assert plan.field_edits == ("Proj",)
    assert plan.field_deletes == ("Old",)
    assert plan.value_sets == ("Dept", "New")
    assert plan.chunks == ((value_key("Dept", "A"), value_key("Dept", "C")),
                           (value_key("New", "N"),))
    assert (plan.strategy, plan.calls, plan.refresh_calls) == ("targeted", 5, 7)


def test_custom_field_values_are_chunked_per_field() -> None:
    """A field's value set of 250 goes in 3 chunks; under 'ignore' removed values are kept."""
    state = fields([("Dept", c, c, "List") for c in codes("V", 251)])
    source = fields([("Dept", c, c, "List") for c in codes("V", 250)])
    d = diff(FIELDS, source, state)
    plan = plan_custom_fields(FIELDS, d, source)
    assert plan.calls == 3
    assert [len(c) for c in plan.chunks] == [100, 100, 50]
    kept = plan_custom_fields(FIELDS, d, source, delete_policy="ignore")
    assert (kept.strategy, kept.calls, kept.kept) == ("none", 0, (value_key("Dept", "V0250"),))
    forced = plan_custom_fields(FIELDS, d, source, delete_policy="ignore", force="refresh")
    assert forced.calls == 3
    assert len(forced.chunks[-1]) == 51


def plan_of(kind_plan: KindPlan, **kw: Any) -> Plan:
    """A company plan around one kind plan."""
    return Plan("uk", (kind_plan,), **kw)


def test_plan_hash_and_json() -> None:
    """Equal plans hash equal; any difference changes the hash; the JSON is plain data."""
    one = plan_of(planned(codes("S", 5), codes("S", 6)))
    two = plan_of(planned(codes("S", 5), codes("S", 6)))
    other = plan_of(planned(codes("S", 5), codes("S", 6), edited=("S0001",)))
    assert one.plan_hash == two.plan_hash != other.plan_hash
    doc = json.loads(one.to_json())
    assert doc["plan_hash"] == one.plan_hash
    assert doc["total_calls"] == 1
    assert doc["kinds"][0]["creates"] == ["S0005"]
    assert doc["kinds"][0]["chunks"] == 1


def test_plan_hash_covers_rejections_and_verdicts_in_any_order() -> None:
    """Rejections are part of the plan (in a fixed order); verdicts too."""
    base = planned(codes("S", 2), codes("S", 2))
    a = Rejection("suppliers", "X", 3, "Name", "too_long", "m", "d")
    b = Rejection("suppliers", None, 1, "Code", "missing_code", "m", "d")
    assert plan_of(base, rejected=(a, b)).plan_hash == plan_of(base, rejected=(b, a)).plan_hash
    assert plan_of(base, rejected=(a,)).plan_hash != plan_of(base).plan_hash
    verdict = GuardVerdict(False, "shrink", "no", "suppliers", "uk")
    assert plan_of(base, verdicts=(verdict,)).plan_hash != plan_of(base).plan_hash


def test_chunks_of() -> None:
    """Keys in order, 100 a chunk, as tuples; no chunk for no keys."""
    assert [len(c) for c in chunks_of([str(i) for i in range(201)])] == [100, 100, 1]
    assert chunks_of([]) == ()


@settings(max_examples=examples(60), deadline=None)
@given(supplier_records(), supplier_records())
def test_plans_are_deterministic(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """The same inputs, in any row order, give the same plan and plan hash."""
    hashes = set()
    for ordering in (new, new[::-1]):
        state, source = frame_of(SUPPLIERS, old[::-1]), frame_of(SUPPLIERS, ordering)
        kind_plan = plan_kind(SUPPLIERS, diff(SUPPLIERS, source, state), source)
        hashes.add(plan_of(kind_plan).plan_hash)
        assert kind_plan.refresh_calls == max(1, -(-len(source) // 100))
    assert len(hashes) == 1


@given(st.lists(st.sampled_from(codes("S", 30)), max_size=40),
       st.lists(st.sampled_from(codes("S", 40)), max_size=20))
@settings(max_examples=examples(200))
def test_the_refresh_cost_counts_the_set_without_building_it(
        source_keys: list[str], kept: list[str]) -> None:
    """The size a refresh's cost is computed from is the size of the set it would send (the
    source's keys, repeated or not, plus the kept keys beyond them)."""
    import pandas as pd

    from sync.reference.rules.plan import _set_keys, _set_size

    source = pd.DataFrame({"x": range(len(source_keys))},
                          index=pd.Index(source_keys, dtype=object))
    assert _set_size(source, kept) == len(_set_keys(source, kept))
