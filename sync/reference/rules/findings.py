"""What normalisation found wrong: a cell's :class:`Finding`, then a row's :class:`Rejection`.

:class:`Work` carries the columns being normalised and collects findings from every rule
(:mod:`sync.reference.rules.normalise`, :mod:`sync.reference.rules.checks`); :func:`rejections`
turns them into the rejected
and warned rows reported to the operator, each with a digest of the row as read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from sync.foundation.entities import FieldSpec, Kind
from sync.reference.rules.columns import Columns
from sync.reference.rules.keys import KEY_SEP, sha256_hex
from sync.reference.rules.values import canonical_json

Severity = Literal["reject", "warn"]


@dataclass(frozen=True)
class Rejection:
    """A source row (or one field of it) that was set aside or warned about, and why.

    ``row`` is the 1-based position in the frame the source returned; ``source_digest`` is a
    digest of the row as read, so a quarantined row can be retried once it changes.
    """

    kind: str
    key: str | None
    row: int | None
    field: str | None
    reason: str
    message: str
    source_digest: str
    severity: Severity = "reject"


class Finding(NamedTuple):
    """One problem with one cell (0-based row), before it becomes a Rejection."""

    row: int
    field: str
    reason: str
    detail: str
    severity: Severity


@dataclass
class Work:
    """The columns being normalised and what was found wrong with them. ``cols`` may hold
    clean text columns as Arrow until their values are read (see
    :class:`~sync.reference.rules.columns.Columns`); ``arrow`` holds the text columns known
    to be Arrow text, cell for cell equal to ``cols``."""

    kind: Kind
    n: int
    raw: dict[str, pd.Series]
    cols: Columns = field(default_factory=Columns)
    findings: list[Finding] = field(default_factory=list)
    arrow: dict[str, Any] = field(default_factory=dict)
    # The source position of each row, when rows were left out before (blank, filtered).
    origin: np.ndarray | None = None
    # Per-value checks (``checks.CHECKED_RULES``): by check name, the values found good in an
    # earlier run (Arrow text; not judged again) and the values found good in this one.
    known: Mapping[str, Any] = field(default_factory=dict)
    good: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given: object = self.cols
        if not isinstance(given, Columns):  # a plain mapping of object arrays
            self.cols = Columns(self.cols)

    def number(self, row: int) -> int:
        """The 1-based row number in the frame the source returned."""
        return (int(self.origin[row]) if self.origin is not None else row) + 1

    def add(self, rows: Iterable[int], spec: FieldSpec, reason: str, detail: str,
            severity: Severity = "reject") -> None:
        # One extend: safe while several columns are checked at once (see ``normalise``).
        self.findings.extend([Finding(int(r), spec.name, reason, detail, severity)
                              for r in rows])


def _show(key: str) -> str:
    return " / ".join(key.split(KEY_SEP))


def _source_digest(work: Work, row: int) -> str:
    values = {name: series.iat[row] for name, series in work.raw.items()}
    return sha256_hex(canonical_json({k: _jsonable(v) for k, v in values.items()}))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "bytes:" + value.hex()
    if type(value).__name__ in ("NAType", "NaTType"):  # a missing cell of an Arrow column
        return None
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return None if isinstance(value, float) and value != value else value
    return str(value)


def rejections(work: Work, keys: np.ndarray) -> tuple[list[Rejection], list[Rejection]]:
    """The findings as (rejected, warned) Rejections, ordered by row, field and reason."""
    out: dict[str, list[Rejection]] = {"reject": [], "warn": []}
    digest_of: dict[int, str] = {}
    for f in sorted(work.findings, key=lambda f: (f.row, f.field, f.reason)):
        key = keys[f.row]
        number = work.number(f.row)
        where = f"{work.kind.label} row {number}" + (f" ({_show(key)})" if key else "")
        digest = digest_of.setdefault(f.row, _source_digest(work, f.row))
        out[f.severity].append(Rejection(work.kind.name, key, number, f.field, f.reason,
                                         f"{where}: {f.field} {f.detail}", digest, f.severity))
    return out["reject"], out["warn"]
