"""What a person sees while and after a sync runs: a progress bar and a summary table.

The bar (on a terminal only) has one task per kind, sized by the plan's call count; the summary
has one row per kind: created (new), edited, deleted, unchanged (same), rejected and failed
records, the calls made (reads and writes) and the seconds taken; then the notes that explain an
outcome other than ``ok`` (errors, settled unknown outcomes, finished refreshes, drift).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from sync.console.render import render_plan
from sync.console.terminal import make_console

if TYPE_CHECKING:
    from sync.reference.engine import CompanyResult

OUTCOME_STYLE = {"ok": "green", "partial": "yellow", "blocked": "red", "failed": "red",
                 "auth": "red"}
# (attribute of KindResult, column header): short headers keep the table in 80 columns.
COLUMNS = (("created", "new"), ("edited", "edit"), ("deleted", "del"), ("unchanged", "same"),
           ("rejected", "rej"), ("failed", "fail"), ("calls", "calls"))


class LiveProgress:
    """A rich progress bar on stderr: ``plan(label, calls)`` opens a task, ``advance`` moves it."""

    def __init__(self, company: str, console: Console | None = None) -> None:
        self.company = company
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console or make_console(file=sys.stderr),
            transient=False)
        self._task: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def plan(self, label: str, calls: int) -> None:
        """Start the bar of one kind, expecting ``calls`` write calls."""
        self._task = self._progress.add_task(f"{self.company}: {label}", total=max(calls, 1))
        if calls == 0:
            self._progress.advance(self._task, 1)

    def advance(self, calls: int = 1) -> None:
        """Count ``calls`` made (a retry round may go past the planned count)."""
        if self._task is not None:
            task = self._progress.tasks[self._task]
            if task.total is not None and task.completed + calls > task.total:
                self._progress.update(self._task, total=task.completed + calls)
            self._progress.advance(self._task, calls)


def summary_table(result: CompanyResult) -> Table:
    """One row per kind: the counts, calls and seconds, strategy and outcome."""
    style = OUTCOME_STYLE.get(result.outcome, "")
    table = Table(title=f"{result.company}: [{style}]{result.outcome}[/] "
                        f"in {result.seconds:.1f} s", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("kind", no_wrap=True)
    table.add_column("strategy", no_wrap=True)
    for _, header in COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("secs", justify="right")
    table.add_column("outcome", no_wrap=True)
    for kind in result.kinds:
        counts = [str(getattr(kind, name)) for name, _ in COLUMNS]
        table.add_row(kind.kind, kind.strategy, *counts, f"{kind.seconds:.2f}",
                      f"[{OUTCOME_STYLE.get(kind.outcome, '')}]{kind.outcome}[/]")
    return table


def skipped_notes(result: CompanyResult) -> list[str]:
    """Source rows that were skipped on purpose: blank rows and rows a where filter left out."""
    lines = []
    for kind in result.kinds:
        if kind.blank:
            lines.append(f"{kind.kind}: {kind.blank} blank row(s) skipped (not quarantined)")
        if kind.filtered:
            lines.append(f"{kind.kind}: {kind.filtered} row(s) left out by the where filter")
    return lines


def notes(result: CompanyResult) -> list[str]:
    """Lines explaining the outcome: errors, refresh windows, settled unknowns, drift, and the
    rows skipped on purpose."""
    lines = [f"error: {result.error}"] if result.error else []
    lines += skipped_notes(result)
    for kind in result.kinds:
        if kind.error:
            lines.append(f"{kind.kind}: {kind.error}")
        if kind.unknown:
            lines.append(f"{kind.kind}: {kind.unknown} call(s) of unknown outcome settled with "
                         f"{kind.settle_reads} read(s)")
        if kind.partial_window_seconds is not None:
            lines.append(f"{kind.kind}: finished a refresh an earlier run left half done; a "
                         f"partial set was live for {kind.partial_window_seconds:.1f} s")
    for drift in result.drift:
        if drift.count:
            verb = "repaired from the source" if drift.policy == "source-wins" else "reported"
            lines.append(f"{drift.kind}: {drift.count} record(s) changed in iCompleat ({verb})")
            lines += [f"  {line}" for line in drift.lines(10)]
    return lines


def print_summary(results: Sequence[CompanyResult], console: Console) -> None:
    """The summary table and notes of each company."""
    for result in results:
        console.print(summary_table(result))
        for line in notes(result):
            console.print(line, markup=False, highlight=False)


def print_results(results: Sequence[CompanyResult], console: Console, *, dry_run: bool,
                  limit: int = 50) -> None:
    """The human-readable output: plans for a dry run, summaries otherwise."""
    if not dry_run:
        print_summary(results, console)
        return

    for result in results:
        console.rule(f"{result.company}: plan ({result.outcome})")
        unread = {k.kind: k.error for k in result.kinds if k.error}
        planned = {kp.kind for kp in result.plan.kinds} if result.plan is not None else set()
        if result.plan is not None:
            render_plan(result.plan, console, limit=limit, unread=unread)
        for kind in result.kinds:
            if kind.error and (result.plan is None or kind.kind in planned):
                console.print(f"{kind.kind}: {kind.error}", markup=False, highlight=False)
        for line in skipped_notes(result):
            console.print(line, markup=False, highlight=False)
        for drift in result.drift:
            for line in drift.lines():
                console.print(f"{drift.kind}: {line}", markup=False, highlight=False)
        if result.error:
            console.print(f"error: {result.error}", markup=False, highlight=False)
