"""The ``icsync poll`` summary: one row per company, then each company's problems."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sync.foundation.secrets import REDACTOR
from sync.transactions.rules import PollResult


def render_poll(results: Sequence[PollResult], console: Console) -> None:
    """The summary table (it fits 80 columns), then each company's problems."""
    seconds = sum(r.seconds for r in results)
    table = Table(title="icsync poll", caption=f"{seconds:.1f} s", box=box.SIMPLE_HEAD,
                  padding=0, pad_edge=False)
    for column in ("company", "outcome", "seen", "posted", "new", "written back",
                   "quarantined", "failed", "skipped"):
        words = max(len(word) for word in column.split())
        table.add_column(column, min_width=words,
                         justify="left" if column in ("company", "outcome") else "right")
    for r in results:
        table.add_row(r.company, r.outcome, *(str(n) for n in (
            r.seen, r.posted, r.created, r.written_back, r.quarantined, r.failed, r.skipped)))
    console.print(table)
    for r in results:
        for line in ([r.error] if r.error else []) + r.problems:
            console.print(Text.assemble((r.company, "bold"), ": ", REDACTOR(line)))
