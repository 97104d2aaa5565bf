"""Source frame -> canonical frame, plus every row set aside with its reason (pure, no IO).

Columns (:mod:`sync.reference.rules.mapping`): blank rows are skipped and counted, a ``where``
filter leaves rows out, then a field takes what its mapping names (a column matched
case-insensitively, a template, a fallback list or a constant), else the source column whose
name equals the field's name ignoring case; a field with neither is missing on every row. A
configured default fills a field's missing cells (and a missing column).
Values then follow the rules of :mod:`sync.reference.rules.values` (NBSP -> space, NFC,
trimmed, "" -> missing; emoji and RTL marks kept; control characters, undecodable bytes, U+FFFD
and lone surrogates refused; text longer than the contract's limit refused).

Rows are REJECTED (left out of the frame, listed with a reason) for: a missing or empty key
(``missing_code``), a missing required value (``missing_value``), a bad text value
(``too_long``, ``control_chars``, ``bad_encoding``, ``bad_value``), a key that collides with
another row's once case, surrounding whitespace, width and zero padding are ignored
(``duplicate_key``: EVERY member of the group is rejected and each message lists them all, so
which one wins never flips between runs), an unknown ISO 3166 country (``bad_iso_country``) or
ISO 4217 currency (``bad_currency``) code, a negative rate (``negative_rate``), and for
currencies anything but exactly one ``IsBase`` row with Rate 1 (``base_currency``: then every
currency row is rejected, since a set without one base is refused as a whole).

Checked with a configurable outcome (``[validation]`` vat / bank: reject, warn or off): supplier
VAT numbers with python-stdnum (``bad_vat``; a number without a country prefix is checked with
the supplier's IsoCode; countries stdnum does not know are not checked), a BankAccountNumber that
looks like an IBAN (two letters, two digits, 11+ more) with schwifty (``bad_iban``), and a
BankSortCode that must be a UK sort code (6 digits, dashes allowed) or a valid BIC (``bad_bank``).
A malformed Email is a warning (``bad_email``), never a rejection.

Transformations: IsoCode and currency codes are upper-cased. Non-sent fields (VatNumber) are
checked, then blanked: the frame keeps their column but never their value. Missing IsBase and
Mandatory are false and a missing custom field Type is "List" (what iCompleat reports). A custom
field's Type and Mandatory are those of its FIRST source row; later rows that say otherwise get
a warning and take the first row's values.

The frame: index = record keys (name "key", sorted), one object column per field of the kind,
plus ``_digest``; values are plain Python objects with None for missing, never pandas NA.
Rejected rows never turn into deletes: pass ``Normalised.held_keys`` to ``diff(hold=...)`` and
their remote records (and any record colliding with them) are left exactly as they are.

Speed: a text value that is already canonical (printable ASCII, trimmed, within its limit) is
recognised in one Arrow pass and kept as the very same object; only the others go through the
scalar rules, and the library checks run once per distinct value. With a hashing helper
(``hasher``) and several batches of rows, the rows are digested while the checks that only find
run (once the checks that change values have), and the good rows take their digests after.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sync.foundation.config import KindSourceConfig, ValidationConfig
from sync.foundation.entities import CUSTOM_FIELD_DEFAULT_TYPE, FieldSpec, Kind
from sync.foundation.errors import ConfigError
from sync.reference.rules.checks import (
    CHECKS,
    TRANSFORMING,
    base_currency,
    collisions,
    settled_checks,
)
from sync.reference.rules.columns import (
    Columns,
    canonical_column,
    column_of,
    mask,
    none_mask,
    text_objects,
)
from sync.reference.rules.findings import Rejection, Work, rejections
from sync.reference.rules.frame import (
    DigestsAhead,
    make_frame,
    row_digests,
    sorted_rows,
    take,
)
from sync.reference.rules.keys import KEY_SEP, Hasher, digests
from sync.reference.rules.mapping import MappingEntry, Rules, shape
from sync.reference.rules.values import InvalidValue, canonical_value

IMPLIED: dict[tuple[str, str], Any] = {("currencies", "IsBase"): False}
_PARALLEL_ROWS = 65_536  # rows past which columns are made canonical two at a time
# Rows past which a clean text column is held as Arrow, its str objects made only when its
# values are read (see ``columns.Columns``): a run that changes nothing never reads them.
ARROW_TEXT_ROWS = 65_536
DEFINITION_DEFAULTS: dict[str, Any] = {"Type": CUSTOM_FIELD_DEFAULT_TYPE, "Mandatory": False}


@dataclass(frozen=True)
class KindMapping:
    """Canonical field name <- source column(s) (see :mod:`sync.reference.rules.mapping`),
    constant defaults, whether to trim text, a ``where`` filter and a base currency."""

    mapping: Mapping[str, MappingEntry] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    trim: bool = True
    where: str | None = None
    base_currency: str | None = None

    @classmethod
    def from_config(cls, config: KindSourceConfig | None) -> KindMapping:
        """The mapping a ``[sources.<name>.kinds.<kind>]`` table describes (None: no table)."""
        if config is None:
            return cls()
        return cls(dict(config.mapping), dict(config.defaults), config.trim, config.where,
                   config.base_currency)

    @property
    def rules(self) -> Rules:
        """The column rules of this mapping."""
        return Rules(self.mapping, self.where, self.base_currency)


@dataclass(frozen=True)
class Normalised:
    """The canonical frame of the rows that can be sent, and the rows set aside."""

    frame: pd.DataFrame
    rejected: tuple[Rejection, ...] = ()
    warnings: tuple[Rejection, ...] = ()
    blank: int = 0      # blank rows (an export's trailer line) skipped, never quarantined
    filtered: int = 0   # rows the kind's ``where`` filter left out
    # By per-value check name, the values found good, when they differ from those given as
    # ``checked`` (see ``checks.CHECKED_RULES``): what the next run should be given.
    checked: Mapping[str, Any] = field(default_factory=dict)

    @property
    def held_keys(self) -> tuple[str, ...]:
        """Keys of rejected rows: their remote records must be neither edited nor deleted."""
        return tuple(sorted({r.key for r in self.rejected if r.key is not None}))

    @property
    def rejected_rows(self) -> int:
        """How many source rows were set aside (a row may carry several rejections)."""
        return len({r.row for r in self.rejected})


class _Clock:
    """Seconds per stage, added to ``stages`` when one is given (no effect otherwise)."""

    def __init__(self, stages: dict[str, float] | None) -> None:
        self.stages, self.mark = stages, time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.stages is not None:
            self.stages[stage] = self.stages.get(stage, 0.0) + now - self.mark
        self.mark = now


def _columns(kind: Kind, raw: pd.DataFrame, mapping: KindMapping) -> dict[str, pd.Series]:
    """Field -> source column, explicit mapping first, then same name ignoring case."""
    lookup = {str(c).casefold(): c for c in raw.columns}
    chosen: dict[str, pd.Series] = {}
    for name, column in mapping.mapping.items():
        if name not in kind.field_names:
            raise ConfigError(f"{kind.label} have no field {name!r}; fields: "
                              f"{', '.join(kind.field_names)}", key=f"mapping.{name}")
        if str(column).casefold() not in lookup:
            raise ConfigError(f"{kind.label}: {name} is mapped from column {column!r}, which the "
                              f"source does not have; it has: {', '.join(map(str, raw.columns))}",
                              key=f"mapping.{name}")
        chosen[name] = raw[lookup[str(column).casefold()]]
    used = {str(c).casefold() for c in mapping.mapping.values()}
    for name in kind.field_names:
        if name not in chosen and name.casefold() in lookup and name.casefold() not in used:
            chosen[name] = raw[lookup[name.casefold()]]
    return chosen


def _default(kind: Kind, spec: FieldSpec, mapping: KindMapping) -> Any:
    if spec.name not in mapping.defaults:
        return IMPLIED.get((kind.name, spec.name))
    try:
        return canonical_value(spec, mapping.defaults[spec.name], trim=mapping.trim)
    except InvalidValue as exc:
        raise ConfigError(f"{kind.label}: the default for {spec.name} {exc}",
                          key=f"defaults.{spec.name}") from None


def _canonicalise(work: Work, spec: FieldSpec, mapping: KindMapping) -> None:
    source = work.raw.get(spec.name)
    default = _default(work.kind, spec, mapping)
    values: np.ndarray | None
    if source is None:
        values = np.full(work.n, default, dtype=object)
        work.cols[spec.name] = values
    else:
        # At scale a clean text column is held as Arrow (its str objects made only if read).
        column = column_of(spec, source, trim=mapping.trim, objects=work.n <= ARROW_TEXT_ROWS)
        values, problems = column.values, column.problems
        for i, exc in problems.items():
            work.add([i], spec, exc.reason, str(exc))
        if column.arrow is not None:
            empty = mask(column.arrow.is_null())
        else:
            assert values is not None  # only a column given as Arrow comes without values
            empty = none_mask(values)
        if default is not None and empty.any():
            empty[list(problems)] = False
            values = (text_objects(column.arrow) if values is None else values).copy()
            values[empty] = default
        elif column.arrow is not None:
            work.arrow[spec.name] = column.arrow
        if values is None:
            work.cols.hold(spec.name, column.arrow)
        else:
            work.cols[spec.name] = values
    if spec.required:
        arrow = work.arrow.get(spec.name)
        missing = np.flatnonzero(mask(arrow.is_null()) if arrow is not None else
                                 none_mask(work.cols[spec.name]))
        bad = {f.row for f in work.findings if f.field == spec.name}
        reason = "missing_code" if spec.name in work.kind.key else "missing_value"
        work.add([r for r in missing.tolist() if r not in bad], spec, reason,
                 "is empty; every row needs one, fill it in the source")


def _canonicalise_all(work: Work, mapping: KindMapping) -> None:
    """Every field's column made canonical: at scale, two columns at a time (Arrow's compute
    runs without Python's lock, so one column's scan overlaps another's str objects). The
    result does not depend on the order: each column writes its own entries, findings are
    only appended (and sorted later), and a failure is that of the first field in order."""
    if work.n <= _PARALLEL_ROWS:
        for spec in work.kind.fields:
            _canonicalise(work, spec, mapping)
        return
    with ThreadPoolExecutor(2, thread_name_prefix="icsync-normalise") as pool:
        done = [pool.submit(_canonicalise, work, spec, mapping) for spec in work.kind.fields]
        for each in done:
            each.result()


def _keys(work: Work) -> np.ndarray:
    """Each row's record key, or None when a key part is missing."""
    parts = [work.cols[name] for name in work.kind.key]
    if len(parts) == 1:
        return parts[0]
    return np.array([None if any(p is None for p in ps) else KEY_SEP.join(map(str, ps))
                     for ps in zip(*parts, strict=True)], dtype=object)


def _field_definitions(work: Work, warn: bool) -> None:
    """Give every value row of a custom field the Type and Mandatory of the field's first row."""
    first: dict[Any, int] = {}
    for row, name in enumerate(work.cols["Field"].tolist()):
        first.setdefault(name, row)
    for column in ("Type", "Mandatory"):
        spec, values = work.kind.field(column), work.cols[column].copy()
        implied = DEFINITION_DEFAULTS[column]
        for row, name in enumerate(work.cols["Field"].tolist()):
            wanted = values[first[name]] if values[first[name]] is not None else implied
            if warn and values[row] is not None and values[row] != wanted:
                work.add([row], spec, "bad_value", f"is {values[row]!r}, but the field's first "
                         f"row (row {first[name] + 1}) says {wanted!r}, which is used", "warn")
            values[row] = wanted
        work.cols[column] = values
        work.arrow.pop(column, None)


def normalise(
    kind: Kind, raw: pd.DataFrame, mapping: KindMapping | None = None,
    validation: ValidationConfig | None = None, *, known: pd.DataFrame | None = None,
    stages: dict[str, float] | None = None, digest_only: Collection[str] | None = None,
    hasher: Hasher | None = None, checked: Mapping[str, Any] | None = None,
) -> Normalised:
    """The canonical frame of ``raw`` plus the rejected and warned rows (see module docstring).

    ``known`` (optional, the state's canonical frame) only saves work: a row equal to its known
    row takes that row's digest instead of computing it again. The result is the same.
    ``stages`` (optional) receives the seconds spent canonicalising (``normalise``), checking
    (``validate``) and digesting (``digest``).
    ``digest_only`` (optional) limits digesting to the rows with those keys; the others carry
    None in ``_digest``. Only for a frame that is planned and never applied (a dry run), where
    digests are compared for keys the state holds and for nothing else.
    ``hasher`` (optional) hashes the rows' canonical texts (see
    :func:`sync.reference.rules.keys.digests`); the digests are the same.
    ``checked`` (optional: by per-value check name, Arrow text) holds values the IBAN, BIC
    and VAT checks found good in an earlier run under ``checks.CHECKED_RULES``: they are not
    judged again. The result's ``checked`` gives this run's good values when they differ.
    """
    clock = _Clock(stages)
    mapping, validation = mapping or KindMapping(), validation or ValidationConfig()
    shaped = shape(kind, raw, mapping.rules)
    del raw  # with the caller's last reference given up, the raw frame goes with ``work.raw``
    blank, filtered = shaped.blank, shaped.filtered
    work = Work(kind, len(shaped.frame), _columns(kind, shaped.frame, KindMapping()),
                origin=shaped.origin, known=checked or {})
    del shaped
    _canonicalise_all(work, mapping)
    clock.lap("normalise")
    for spec in kind.fields:
        if spec.check in TRANSFORMING:
            CHECKS[spec.check](work, spec, validation)
    if kind.field_values:
        _field_definitions(work, warn=True)
    ahead = _digests_ahead(work, hasher) if known is None and digest_only is None else None
    try:
        return _validated(work, validation, clock, blank, filtered, known, digest_only,
                          hasher, ahead)
    finally:
        if ahead is not None:
            ahead.wait()  # not left running past a failure


def _digests_ahead(work: Work, hasher: Hasher | None) -> DigestsAhead | None:
    """Digests of the rows nothing has rejected yet, started now (their values are final) so
    that they are made while the other checks run, on the other core. None when that does not
    pay."""
    if not DigestsAhead.worth(work, hasher):
        return None
    refused = {f.row for f in work.findings if f.severity == "reject"}
    keyed = np.ones(work.n, dtype=bool)
    for name in work.kind.key:
        keyed &= ~none_mask(work.cols[name])
    if refused:
        keyed[list(refused)] = False
    return DigestsAhead(work, np.flatnonzero(keyed), hasher)


def _validated(work: Work, validation: ValidationConfig, clock: _Clock,
               blank: int, filtered: int, known: pd.DataFrame | None,
               digest_only: Collection[str] | None, hasher: Hasher | None,
               ahead: DigestsAhead | None) -> Normalised:
    """The rest of :func:`normalise` once the values are final: the checks that only find,
    the keys, the frame of the good rows in key order with their digests."""
    kind = work.kind
    for spec in kind.fields:
        if spec.check is not None and spec.check not in TRANSFORMING:
            CHECKS[spec.check](work, spec, validation)
    keys = _keys(work)
    collisions(work, keys)
    rejected = {f.row for f in work.findings if f.severity == "reject"}
    if kind.name == "currencies":
        base_currency(work, rejected)
        rejected = {f.row for f in work.findings if f.severity == "reject"}
    good = np.array([r for r in range(work.n) if r not in rejected and keys[r] is not None],
                    dtype=np.intp) if rejected else np.flatnonzero(~none_mask(keys))
    bad, warned = rejections(work, keys)  # the last use of the raw values (source digests)
    work.raw = {}  # a million raw rows are not kept through digesting
    clock.lap("validate")
    rows = sorted_rows(work, keys, good)
    digest = (ahead.take(rows) if ahead is not None else
              row_digests(work, keys, rows, known, digest_only, hasher))
    frame = make_frame(kind, take(work.cols, rows, work.n), take({"": keys}, rows, work.n)[""],
                       digest)
    clock.lap("digest")
    return Normalised(frame, tuple(bad), tuple(warned), blank, filtered, settled_checks(work))


def canonical_records(kind: Kind, records: Iterable[Mapping[str, Any]], *, trim: bool = True,
                      stored_digests: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The canonical frame of records read back from iCompleat or kept in state (tolerant).

    Nothing is rejected: unconvertible values are kept as text, omitted and None are equal,
    extra fields are ignored, a record without a key is skipped and the last of two records
    with one key wins. ``stored_digests`` (key -> digest kept beside these very records, as
    the state database does) are used as they are instead of being computed again: at a
    million records that saves seconds. Keys without one are digested.
    """
    items = list(records)
    cols: dict[str, np.ndarray] = {}
    for spec in kind.fields:
        values = pd.Series([r.get(spec.name) for r in items], dtype=object)
        cols[spec.name], _ = canonical_column(spec, values, trim=trim, strict=False)
        implied = IMPLIED.get((kind.name, spec.name))
        if implied is not None:
            cols[spec.name] = np.where(none_mask(cols[spec.name]), implied, cols[spec.name])
    work = Work(kind, len(items), {}, Columns(cols))
    if kind.field_values:
        _field_definitions(work, warn=False)
    keys = _keys(work)
    last = pd.Series(np.arange(len(items)), index=pd.Index(keys, dtype=object))
    last = last[~none_mask(keys)]
    good = last[~last.index.duplicated(keep="last")].to_numpy()
    rows = sorted_rows(work, keys, np.sort(good))
    stored = stored_digests or {}
    out = np.array([stored.get(k) for k in keys[rows].tolist()] if stored else
                   [None] * len(rows), dtype=object)
    todo = np.flatnonzero(none_mask(out))
    out[todo] = digests(kind, work.cols, rows[todo])
    return make_frame(kind, {n: c[rows] for n, c in work.cols.items()}, keys[rows], out)
