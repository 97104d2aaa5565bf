"""The canonical frame of the rows that survived: sorted by key, each with its digest.

Speed matters here (a million suppliers per run): rows already in key order are not re-sorted,
a column taken whole is not copied, and a row equal to its ``known`` state row reuses that
row's digest instead of hashing again. Equality is decided column by column in Arrow where
both sides are text, so the shortcut never changes the result.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sync.foundation.entities import Kind
from sync.reference.rules import keys as key_rules
from sync.reference.rules.columns import as_arrow, held_arrow, mask, none_mask
from sync.reference.rules.findings import Work
from sync.reference.rules.keys import Hasher, digests, positions, strictly_increasing
from sync.reference.rules.values import canonical_json


def make_frame(kind: Kind, cols: Mapping[str, Any], keys: np.ndarray,
               digest: Iterable[str]) -> pd.DataFrame:
    """The frame of ``cols`` (already in ``keys`` order): non-sent fields blank, plus _digest.
    A column given as an Arrow-backed pandas array (see :func:`take`) stays one: read it
    with :func:`~sync.reference.rules.columns.column_objects`; every other column holds
    objects."""
    def blank() -> np.ndarray:  # one array per column: no two columns share their cells
        return np.full(len(keys), None, object)

    data = {name: cols[name] if kind.field(name).sent else blank() for name in kind.field_names}
    arrow = {n: v for n, v in data.items() if isinstance(v, pd.arrays.ArrowExtensionArray)}
    data.update({n: blank() for n in arrow})  # in place below, after the object columns
    data["_digest"] = np.array(list(digest), dtype=object)
    index = pd.Index(keys, dtype=object, name="key")
    frame = pd.DataFrame(data, index=index, dtype=object, copy=False)
    for name, values in arrow.items():
        frame[name] = values
    return frame


def _every_row(rows: np.ndarray, n: int) -> bool:
    """True when ``rows`` is 0, 1, ... n-1."""
    return len(rows) == n and (n == 0 or (rows[0] == 0 and bool((np.diff(rows) == 1).all())))


def take(cols: Mapping[str, np.ndarray], rows: np.ndarray, n: int) -> dict[str, Any]:
    """``cols`` at ``rows``; the arrays themselves when ``rows`` is every row in order. A
    column still held as Arrow (:class:`~sync.reference.rules.columns.Columns`) is taken in
    Arrow, as an Arrow-backed pandas array: its values are not made into objects."""
    every = _every_row(rows, n)
    out: dict[str, Any] = {}
    for name in cols:
        held = held_arrow(cols, name)
        if held is not None:
            out[name] = pd.arrays.ArrowExtensionArray(
                held if every else held.take(pa.array(rows, type=pa.int64())))
        else:
            values = cols[name]
            out[name] = values if every else values[rows]
    return out


def _key_arrow(work: Work, rows: np.ndarray) -> Any:
    """The keys at ``rows`` as Arrow, when the key column is cached as Arrow."""
    arrow = work.arrow.get(work.kind.key[0]) if len(work.kind.key) == 1 else None
    if arrow is None or len(rows) == work.n:
        return arrow
    return arrow.take(pa.array(rows))


def sorted_rows(work: Work, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows`` ordered by their (unique) keys; left as they are when already in order."""
    arrow = _key_arrow(work, rows)
    if strictly_increasing(keys[rows], arrow):
        return rows
    if arrow is None:
        arrow = as_arrow(keys[rows])
    if arrow is None:
        return rows[sorted(range(len(rows)), key=lambda i: str(keys[rows[i]]))]
    order = np.asarray(pc.sort_indices(arrow).to_numpy(zero_copy_only=False), dtype=np.intp)
    return np.asarray(rows[order])


def row_digests(work: Work, keys: np.ndarray, rows: np.ndarray,
                known: pd.DataFrame | None, only: Collection[str] | None = None,
                hasher: Hasher | None = None) -> np.ndarray:
    """Digests of ``rows``; rows equal to their ``known`` state row reuse its digest. With
    ``only``, rows whose key is not in it get None instead of a digest. ``hasher``: see
    :func:`sync.reference.rules.keys.digests`."""
    out = np.empty(len(rows), dtype=object)
    todo = np.arange(len(rows))
    if only is not None:
        wanted = np.flatnonzero(pd.Index(keys[rows], dtype=object).isin(list(only)))
        if len(wanted):
            out[wanted] = row_digests(work, keys, rows[wanted], known, hasher=hasher)
        return out
    if known is not None and len(known) and len(rows):
        where = positions(keys[rows], np.asarray(known.index, dtype=object),
                          values_arrow=_key_arrow(work, rows))
        same = (where >= 0) & _equal_rows(work, rows, known, where)
        out[same] = known["_digest"].to_numpy(dtype=object)[where[same]]
        todo = np.flatnonzero(~same)
    out[todo] = digests(work.kind, work.cols, rows[todo], arrow=work.arrow, hasher=hasher)
    return out


class DigestsAhead:
    """The digests of a Work's rows, computed in a thread while the caller goes on validating
    (the rows' values must be final: only findings may be added meanwhile). ``rows``: the
    rows digested, in ascending order; :meth:`take` gives the digests of any of them (and
    digests any other row it is asked for there and then), exactly what
    :func:`sync.reference.rules.keys.digests` gives."""

    def __init__(self, work: Work, rows: np.ndarray, hasher: Hasher | None) -> None:
        self.kind, self.rows = work.kind, rows
        self.cols, self.arrow = work.cols.copy(), dict(work.arrow)  # as they are now
        pool = ThreadPoolExecutor(1, thread_name_prefix="icsync-digest-ahead")
        self._future: Future[list[str]] = pool.submit(
            digests, self.kind, self.cols, rows, arrow=self.arrow, hasher=hasher)
        pool.shutdown(wait=False)

    @staticmethod
    def worth(work: Work, hasher: Hasher | None) -> bool:
        """Whether digesting ahead pays: a helper hashes, and there are several batches."""
        return hasher is not None and work.n > key_rules.DIGEST_BATCH

    def wait(self) -> None:
        """Wait for the digests (a failure among them is raised by :meth:`take`)."""
        self._future.exception()

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The digests of ``rows`` (any order)."""
        found = np.array(self._future.result(), dtype=object)
        at = np.searchsorted(self.rows, rows)
        inside = at < len(self.rows)
        inside[inside] = self.rows[at[inside]] == rows[inside]
        out = np.empty(len(rows), dtype=object)
        out[inside] = found[at[inside]]
        others = np.flatnonzero(~inside)
        if len(others):
            out[others] = digests(self.kind, self.cols, rows[others], arrow=self.arrow)
        return out


def _equal_text(work: Work, name: str, rows: np.ndarray, known: pd.DataFrame,
                where: np.ndarray) -> np.ndarray:
    """Cell-by-cell equality of a text column with the known rows at ``where`` (-1: none)."""
    mine, other = work.arrow.get(name), as_arrow(known[name].to_numpy(dtype=object))
    if mine is None:
        mine = as_arrow(work.cols[name])
    if mine is None or other is None:
        values = known[name].to_numpy(dtype=object)[where]
        return np.asarray(work.cols[name][rows] == values, dtype=bool)
    if not _every_row(rows, work.n):
        mine = mine.take(pa.array(rows))
    other = other.take(pa.array(where, mask=where < 0))
    both_missing = pc.and_(pc.is_null(mine), pc.is_null(other))
    return mask(pc.fill_null(pc.or_kleene(pc.equal(mine, other), both_missing), False))


def _equal_rows(work: Work, rows: np.ndarray, known: pd.DataFrame,
                where: np.ndarray) -> np.ndarray:
    """Rows whose every sent value equals the known row's at ``where`` (-1 rows: ignore)."""
    same = np.ones(len(rows), dtype=bool)
    for name in work.kind.sent_fields:
        kind = work.kind.field(name).type
        if kind == "str":
            same &= _equal_text(work, name, rows, known, where)
            continue
        mine, other = work.cols[name][rows], known[name].to_numpy(dtype=object)[where]
        if kind == "json":
            both = np.flatnonzero(~(none_mask(mine) & none_mask(other)))
            same[both] &= np.array([canonical_json(mine[i]) == canonical_json(other[i])
                                    for i in both.tolist()], dtype=bool)
        else:
            same &= np.asarray(mine == other, dtype=bool)  # int/float/bool or text: no overlap
    return same
