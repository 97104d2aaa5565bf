"""The plan as text: counts, changes field by field, rejected rows, readable without colour."""

from __future__ import annotations

from rich.console import Console

from sync.console.render import render_plan, show_key
from sync.reference.rules.diff import diff
from sync.reference.rules.normalise import normalise
from sync.reference.rules.plan import GuardVerdict, Plan, plan_kind
from tests.reference.rules.support import SUPPLIERS, frame_of, source_frame, suppliers


def text_of(plan: Plan, limit: int = 50) -> str:
    """The plain-text rendering of ``plan``."""
    console = Console(no_color=True, width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    render_plan(plan, console, limit=limit)
    text = console.export_text()
    console.file.close()
    return text


def sample_plan() -> Plan:
    """Two edits, a create, a delete, a rejected row with markup in it, and a verdict."""
    state = frame_of(SUPPLIERS, [*suppliers("A", "B", "C"), {"Code": "D", "Name": "old"}])
    raw = source_frame({"Code": ["A", "B", "D", "E", "F"],
                        "Name": ["Supplier A", "[bold]new[/bold]", "new", "Supplier E",
                                 "bad\x01"]})
    norm = normalise(SUPPLIERS, raw)
    d = diff(SUPPLIERS, norm.frame, state, hold=norm.held_keys)
    kind_plan = plan_kind(SUPPLIERS, d, norm.frame, rejected=1)
    blocked = GuardVerdict(False, "shrink", "uk / suppliers: blocked (shrink)", "suppliers", "uk")
    return Plan("uk", (kind_plan,), norm.rejected, norm.warnings, (blocked,))


def test_counts_changes_and_rejections_read_as_text() -> None:
    """The table, the field-level changes and the reasons all appear in plain text."""
    text = text_of(sample_plan())
    assert "Plan for uk" in text
    assert "Suppliers" in text
    assert "refresh" in text
    assert "~ B" in text
    assert "Name: 'Supplier B' -> '[bold]new[/bold]'" in text
    assert "+ E" in text
    assert "- C" in text
    assert "Rejected rows (1)" in text
    assert "control_chars" in text
    assert "U+0001" in text
    assert "Blocked: uk / suppliers: blocked (shrink)" in text
    assert "\x1b[" not in text


def test_limit_counts_what_it_hides() -> None:
    """Past the limit, the rest are counted, not printed."""
    state = frame_of(SUPPLIERS, [])
    source = frame_of(SUPPLIERS, suppliers(*[f"S{i:03d}" for i in range(30)]))
    plan = Plan("uk", (plan_kind(SUPPLIERS, diff(SUPPLIERS, source, state), source),))
    text = text_of(plan, limit=5)
    assert "+ S004" in text
    assert "+ S005" not in text
    assert "... and 25 more" in text


def test_nothing_to_do() -> None:
    """An empty plan says so."""
    frame = frame_of(SUPPLIERS, suppliers("A"))
    plan = Plan("uk", (plan_kind(SUPPLIERS, diff(SUPPLIERS, frame, frame), frame),))
    assert "Nothing to do" in text_of(plan)


def test_show_key() -> None:
    """Custom field keys print as Field / Code."""
    assert show_key("Dept\x1fA") == "Dept / A"
