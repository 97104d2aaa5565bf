"""A result that holds a million keys is shown by its sizes, never key by key."""

from __future__ import annotations

from sync.foundation.reprs import BRIEF_ITEMS, brief_repr, brief_value
from sync.reference.engine import CompanyResult
from sync.reference.rules.diff import KindDiff
from sync.reference.rules.findings import Finding
from sync.reference.rules.plan import KindPlan, Plan


def big_result(n: int) -> CompanyResult:
    keys = tuple(f"S{i:07d}" for i in range(n))
    diff = KindDiff("suppliers", creates=keys, deletes=("OLD",), unchanged=3)
    kind = KindPlan(kind="suppliers", strategy="targeted", diff=diff, source_count=n,
                    remote_count=0, calls=n, targeted_calls=n, refresh_calls=n // 100,
                    chunks=(keys,))
    return CompanyResult("acme", plan=Plan("acme", kinds=(kind,)), dry_run=True)


def test_long_collections_are_shown_by_size() -> None:
    text = repr(big_result(100_000))
    assert len(text) < 1_000
    assert "creates=<tuple of 100000>" in text
    assert "deletes=('OLD',)" in text  # a short one is shown whole
    assert "S0000042" not in text
    assert text.startswith("CompanyResult(company='acme', outcome='ok'")


def test_brief_value_is_repr_up_to_the_limit() -> None:
    short = list(range(BRIEF_ITEMS))
    assert brief_value(short) == repr(short)
    assert brief_value([*short, 1]) == f"<list of {BRIEF_ITEMS + 1}>"
    assert brief_value({i: i for i in range(BRIEF_ITEMS + 1)}) == f"<dict of {BRIEF_ITEMS + 1}>"
    assert brief_value("x" * 100) == repr("x" * 100)  # text is not a collection here
    nested: tuple[object, ...] = ((1, 2), [tuple(range(10))], {"a": {1}}, frozenset(), set(),
                                  ("x",))
    assert brief_value(nested) == (
        "((1, 2), [<tuple of 10>], {'a': {1}}, frozenset(), set(), ('x',))")
    assert brief_value([frozenset({2})]) == repr([frozenset({2})])
    finding = Finding(3, "Email", "bad_email", "no @", "warn")
    assert brief_value((finding,)) == f"({finding!r},)"  # a named tuple keeps its names
    assert brief_value(tuple([finding] * 7)) == "<tuple of 7>"
    assert brief_repr(KindDiff("currencies")) == (
        "KindDiff(kind='currencies', creates=(), edits=(), deletes=(), unchanged=0, held=())")
