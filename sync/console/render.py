"""A plan as a person reads it: counts per kind, the changes field by field, the rows set aside.

Everything taken from the data is printed as plain text (never as rich markup), so a supplier
called "[bold]" prints as itself, and the output reads the same without colour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def counts_table(plan: Plan, unread: Mapping[str, str] | None = None) -> Table:
    """One row per kind: create / edit / delete / unchanged / rejected / strategy / calls.

    Rejected counts ROWS everywhere (a row with two bad fields is one). ``unread`` (kind ->
    error) adds a row for each kind whose source could not be read, so no kind goes missing.
    """
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
    planned = {kp.kind for kp in plan.kinds}
    for kind in (k for k in (unread or {}) if k not in planned):
        table.add_row(_label(kind), "-", "-", "-", "-", "-", "not read", "0", "-")
    total = sum(max(kp.rejected, _rejected_rows(plan, kp.kind)) for kp in plan.kinds)
    table.add_row("Total", "", "", "", "", str(total), "", str(plan.total_calls), "",
                  style="bold")
    return table


def _limited(groups: Sequence[list[Text]], limit: int, noun: str = "more") -> Iterable[Text]:
    """The first ``limit`` records' lines, then how many RECORDS were left out."""
    for group in groups[:limit]:
        yield from group
    if len(groups) > limit:
        yield Text(f"    ... and {len(groups) - limit} {noun}")


def change_groups(kp: KindPlan) -> list[list[Text]]:
    """The lines of each changed record: ``+ key`` for creates, ``~ key`` then ``Field: before
    -> after`` for edits, ``- key`` for deletes (``kept`` when the delete policy keeps them)."""
    groups = [[Text(f"  + {show_key(k)}", style="green")] for k in kp.diff.creates]
    for edit in kp.diff.edits:
        groups.append([Text(f"  ~ {show_key(edit.key)}", style="yellow")] + [
            Text(f"      {c.field}: {show_value(c.before)} -> {show_value(c.after)}")
            for c in edit.changes])
    mark = "kept, not deleted" if kp.deletes_suppressed else ""
    groups += [[Text(f"  - {show_key(k)}" + (f"  ({mark})" if mark else ""), style="red")]
               for k in kp.diff.deletes]
    groups += [[Text(f"  ! {show_key(k)}  (new, deferred: needs a refresh)")]
               for k in kp.deferred]
    return groups


def change_lines(kp: KindPlan) -> list[Text]:
    """Every line of :func:`change_groups`, in order."""
    return [line for group in change_groups(kp) for line in group]


def _rows_of(rejections: Sequence[Rejection]) -> list[list[Rejection]]:
    """Rejections grouped by source row (kind, row), in order."""
    groups: dict[tuple[str, int | None, str | None], list[Rejection]] = {}
    for r in rejections:
        groups.setdefault((r.kind, r.row, r.key if r.row is None else None), []).append(r)
    return list(groups.values())


def _rejection_table(title: str, rows: Sequence[Rejection], limit: int) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in ("Kind", "Row", "Key", "Field", "Reason", "What to do"):
        table.add_column(name, overflow="fold")
    groups = _rows_of(rows)
    for group in groups[:limit]:
        for r in group:
            table.add_row(_label(r.kind), str(r.row or ""), Text(show_key(r.key or "")),
                          r.field or "", r.reason, Text(r.message))
    if len(groups) > limit:
        table.add_row("", "", "", "", "", f"... and {len(groups) - limit} more rows")
    return table


def render_plan(plan: Plan, console: Console, *, limit: int = 50,
                unread: Mapping[str, str] | None = None) -> None:
    """Print ``plan``: counts per kind, guard verdicts, changes, then rejected and warned rows.

    ``limit`` caps the RECORDS shown per kind and per table (the rest are counted);
    ``unread`` (kind -> error) names the kinds whose source could not be read.
    """
    console.print(counts_table(plan, unread))
    for verdict in (v for v in plan.verdicts if v.rule is not None):
        word = "Blocked" if not verdict.allowed else "Overridden"
        console.print(Text(f"{word}: {verdict.message}", style="bold red"))
    for kp in plan.kinds:
        groups = change_groups(kp)
        if groups:
            console.print(Text(f"{_label(kp.kind)}: {len(kp.diff.creates)} to create, "
                               f"{len(kp.diff.edits)} to edit, {len(kp.diff.deletes)} to "
                               f"delete ({kp.strategy}, {kp.calls} calls)", style="bold"))
            for line in _limited(groups, limit):
                console.print(line)
    if plan.rejected:
        console.print(_rejection_table(f"Rejected rows ({len(_rows_of(plan.rejected))})",
                                       plan.rejected, limit))
    if plan.warnings:
        console.print(_rejection_table(f"Warnings ({len(_rows_of(plan.warnings))} rows)",
                                       plan.warnings, limit))
    for kind, error in (unread or {}).items():
        console.print(Text(f"{_label(kind)}: {error}", style="bold red"))
    if not plan.total_calls and not plan.rejected and not unread:
        console.print("Nothing to do: iCompleat already matches the source.")
