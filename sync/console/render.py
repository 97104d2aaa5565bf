"""A plan as a person reads it: counts per kind, the changes field by field, the rows set aside.

Everything taken from the data is printed as plain text (never as rich markup), so a supplier
called "[bold]" prints as itself, and the output reads the same without colour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sync.foundation.entities import KINDS
from sync.reference.rules.findings import Rejection
from sync.reference.rules.keys import KEY_SEP
from sync.reference.rules.plan import KindPlan, Plan


def show_key(key: str) -> str:
    """A record key for people: custom field keys as "Field / Code"."""
    return " / ".join(key.split(KEY_SEP))


def show_value(value: Any) -> str:
    """A field value for people: text quoted, missing as (empty)."""
    if value is None:
        return "(empty)"
    return repr(value) if isinstance(value, str) else str(value)


def _label(kind: str) -> str:
    return KINDS[kind].label if kind in KINDS else kind


def _rejected_rows(plan: Plan, kind: str) -> int:
    return len({r.row for r in plan.rejected if r.kind == kind})


def _deletes(kp: KindPlan) -> str:
    if kp.deletes_suppressed:
        return f"0 (+{kp.deletes_suppressed} kept)"
    return str(len(kp.diff.deletes))


def counts_table(plan: Plan) -> Table:
    """One row per kind: create / edit / delete / unchanged / rejected / strategy / calls."""
    table = Table(title=f"Plan for {plan.company}", title_justify="left")
    for name in ("Kind", "Create", "Edit", "Delete", "Unchanged", "Rejected", "Strategy",
                 "Calls", "Targeted / refresh"):
        table.add_column(name, justify="left" if name in ("Kind", "Strategy") else "right")
    for kp in plan.kinds:
        targeted = "-" if kp.targeted_calls is None else str(kp.targeted_calls)
        rejected = max(kp.rejected, _rejected_rows(plan, kp.kind))
        table.add_row(_label(kp.kind), str(len(kp.diff.creates)), str(len(kp.diff.edits)),
                      _deletes(kp), str(kp.diff.unchanged), str(rejected),
                      kp.strategy + (" (forced)" if kp.forced else ""), str(kp.calls),
                      f"{targeted} / {kp.refresh_calls}")
    table.add_row("Total", "", "", "", "", str(len({(r.kind, r.row) for r in plan.rejected})),
                  "", str(plan.total_calls), "", style="bold")
    return table


def _limited(lines: Sequence[Text], limit: int) -> Iterable[Text]:
    yield from lines[:limit]
    if len(lines) > limit:
        yield Text(f"    ... and {len(lines) - limit} more")


def change_lines(kp: KindPlan) -> list[Text]:
    """``+ key`` for creates, ``~ key  Field: before -> after`` for edits, ``- key`` for
    deletes (``kept`` when the delete policy keeps them)."""
    lines = [Text(f"  + {show_key(k)}", style="green") for k in kp.diff.creates]
    for edit in kp.diff.edits:
        lines.append(Text(f"  ~ {show_key(edit.key)}", style="yellow"))
        lines += [Text(f"      {c.field}: {show_value(c.before)} -> {show_value(c.after)}")
                  for c in edit.changes]
    mark = "kept, not deleted" if kp.deletes_suppressed else ""
    lines += [Text(f"  - {show_key(k)}" + (f"  ({mark})" if mark else ""), style="red")
              for k in kp.diff.deletes]
    lines += [Text(f"  ! {show_key(k)}  (new, deferred: needs a refresh)") for k in kp.deferred]
    return lines


def _rejection_table(title: str, rows: Sequence[Rejection], limit: int) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in ("Kind", "Row", "Key", "Field", "Reason", "What to do"):
        table.add_column(name, overflow="fold")
    for r in rows[:limit]:
        table.add_row(_label(r.kind), str(r.row or ""), Text(show_key(r.key or "")),
                      r.field or "", r.reason, Text(r.message))
    if len(rows) > limit:
        table.add_row("", "", "", "", "", f"... and {len(rows) - limit} more")
    return table


def render_plan(plan: Plan, console: Console, *, limit: int = 50) -> None:
    """Print ``plan``: counts per kind, guard verdicts, changes, then rejected and warned rows.

    ``limit`` caps the lines shown per kind and per table (the rest are counted).
    """
    console.print(counts_table(plan))
    for verdict in (v for v in plan.verdicts if v.rule is not None):
        word = "Blocked" if not verdict.allowed else "Overridden"
        console.print(Text(f"{word}: {verdict.message}", style="bold red"))
    for kp in plan.kinds:
        lines = change_lines(kp)
        if lines:
            console.print(Text(f"{_label(kp.kind)}: {len(kp.diff.creates)} to create, "
                               f"{len(kp.diff.edits)} to edit, {len(kp.diff.deletes)} to "
                               f"delete ({kp.strategy}, {kp.calls} calls)", style="bold"))
            for line in _limited(lines, limit):
                console.print(line)
    if plan.rejected:
        console.print(_rejection_table(f"Rejected rows ({len(plan.rejected)})",
                                       plan.rejected, limit))
    if plan.warnings:
        console.print(_rejection_table(f"Warnings ({len(plan.warnings)})", plan.warnings, limit))
    if not plan.total_calls and not plan.rejected:
        console.print("Nothing to do: iCompleat already matches the source.")
