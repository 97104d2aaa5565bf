"""Canonical values a column at a time: :func:`canonical_value` over a whole column, fast.

A value that is plain printable ASCII, already trimmed and within its limit is its own
canonical form, so only the other ("dirty") cells go through the scalar rules; the clean ones
keep their very objects (no copy), which keeps a million rows fast and small. Also here: the
small numpy/Arrow conversions the other vectorised code (keys, checks, frame) shares.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sync.foundation.entities import FieldSpec
from sync.foundation.numbers import MAX_MAGNITUDE
from sync.reference.rules.values import InvalidValue, canonical_value

# Whole numbers at or past this are refused by the scalar rule (``bounded_decimal``).
_INT_BOUND = 10 ** MAX_MAGNITUDE


def as_objects(values: Any) -> np.ndarray:
    """``values`` as a 1-D object array, missing values left as they are (no copy if possible)."""
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy(dtype=object)
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values.astype(object, copy=False)
    return pd.Series(list(values), dtype=object).to_numpy()


def object_values(values: Any) -> np.ndarray:
    """``values`` (Series, array, iterable) as a 1-D object array, None for every missing value."""
    out = as_objects(values)
    missing = pd.isna(out)
    if missing.any():
        out = out.copy()
        out[missing] = None
    return out


def none_mask(values: np.ndarray) -> np.ndarray:
    """Which cells of an object array (missing values already None) are None."""
    return np.asarray(values == None, dtype=bool)  # noqa: E711 - elementwise, not identity


def as_arrow(values: np.ndarray) -> Any:
    """``values`` as an Arrow string array, or None unless every cell is text or None."""
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        return None  # numbers, bytes, NaN, lone surrogates: the scalar rules decide


def mask(array: Any) -> np.ndarray:
    """An Arrow boolean array as numpy (nulls must have been filled)."""
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _clean_mask(arr: Any, trim: bool, limit: int | None) -> np.ndarray:
    """Cells that are missing or already canonical printable ASCII text (see the note above)."""
    length = pc.binary_length(arr)
    clean = pc.and_(pc.ascii_is_printable(arr), pc.greater(length, 0))  # false for non-ASCII
    if trim:
        clean = pc.and_not(clean, pc.or_(pc.starts_with(arr, " "), pc.ends_with(arr, " ")))
    if limit is not None:
        clean = pc.and_(clean, pc.less_equal(length, limit))
    return mask(pc.fill_null(clean, True))


def source_arrow(values: Any) -> Any:
    """The Arrow array behind an Arrow-backed pandas column (``pd.ArrowDtype``), else None."""
    if not isinstance(getattr(values, "dtype", None), pd.ArrowDtype):
        return None
    arr = pa.array(values)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _native_arrow(spec: FieldSpec, arr: Any) -> np.ndarray | None:
    """Numbers and booleans straight from an Arrow column (nulls as None), or None when the
    rules must decide (text, numbers held as text, NaN or infinities)."""
    kind = arr.type
    if spec.type == "float" and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        numbers_ = pc.cast(arr, pa.float64())
        if pc.all(pc.is_finite(numbers_)).as_py() not in (True, None):
            return None
        return np.array([v + 0.0 if v is not None else None for v in numbers_.to_pylist()],
                        dtype=object)
    if spec.type == "int" and pa.types.is_integer(kind):
        low, high = pc.min_max(arr).values()
        if low.is_valid and not -_INT_BOUND < low.as_py() <= high.as_py() < _INT_BOUND:
            return None  # past the bound: the scalar rule refuses it, naming the cell
        return np.array(arr.to_pylist(), dtype=object)
    if spec.type == "bool" and pa.types.is_boolean(kind):
        return np.array(arr.to_pylist(), dtype=object)
    return None


def _native_column(spec: FieldSpec, values: Any) -> np.ndarray | None:
    """Numbers and booleans straight from a numpy column, or None when the rules must decide."""
    arr = source_arrow(values)
    if arr is not None:
        return _native_arrow(spec, arr)
    kind = getattr(getattr(values, "dtype", None), "kind", "")
    if spec.type == "float" and kind in "iuf":
        numbers_ = np.asarray(values, dtype="float64") + 0.0
        if not np.isfinite(numbers_[~np.isnan(numbers_)]).all():
            return None
        out = np.array(numbers_.tolist(), dtype=object)
        out[np.isnan(numbers_)] = None
        return out
    if spec.type == "int" and kind in "iu":
        ints = np.asarray(values).tolist()
        if ints and not -_INT_BOUND < min(ints) <= max(ints) < _INT_BOUND:
            return None
        return np.array(ints, dtype=object)
    if spec.type == "bool" and kind == "b":
        return np.array(np.asarray(values).tolist(), dtype=object)
    return None


@dataclass(frozen=True)
class Column:
    """A canonical column: values, problems by position, and (when every cell came through
    unchanged as text or None) the same values as an Arrow string array for reuse. ``values``
    is None only when it was asked for without objects (see :func:`column_of`) and every
    cell is clean text: ``arrow`` then holds the column."""

    values: np.ndarray | None
    problems: dict[int, InvalidValue]
    arrow: Any = None


class _Held:
    """A text column held as Arrow until its values are asked for."""

    __slots__ = ("arrow",)

    def __init__(self, arrow: Any) -> None:
        self.arrow = arrow


class Columns(MutableMapping[str, np.ndarray]):
    """Field -> canonical values (an object array, None where missing), where a clean text
    column may be HELD as its Arrow string array instead (:meth:`hold`): its str objects
    are made the first time its values are asked for (``columns[name]``, ``get``, ``items``,
    ``values``), once. At a million rows a text column's str objects cost about a tenth of a
    second and tens of MB each, and a run that changes nothing never needs them: the
    digests are made from the Arrow text, and the frame keeps it as an Arrow-backed column
    (see :func:`column_objects`). Anything that reads values gets them, so holding a column
    never changes a result."""

    def __init__(self, values: Mapping[str, np.ndarray] | None = None) -> None:
        self._cols: dict[str, np.ndarray | _Held] = dict(values or {})
        self._lock = threading.Lock()

    def hold(self, name: str, arrow: Any) -> None:
        """Keep the text column ``name`` as the Arrow string array ``arrow`` (no null-free
        guarantee: a missing cell is a null) until its values are asked for."""
        self._cols[name] = _Held(arrow)

    def held(self, name: str) -> Any:
        """The Arrow array of ``name`` while it is held (its values not made yet), else None."""
        value = self._cols.get(name)
        return value.arrow if isinstance(value, _Held) else None

    def copy(self) -> Columns:
        """A shallow copy: the same arrays, held columns still held (nothing is made)."""
        out = Columns()
        out._cols = dict(self._cols)
        return out

    def __getitem__(self, name: str) -> np.ndarray:
        value = self._cols[name]
        if not isinstance(value, _Held):
            return value
        made = text_objects(value.arrow)
        with self._lock:  # set unless another thread set the column meanwhile
            current = self._cols[name]
            if current is value:
                self._cols[name] = made
                return made
        return self[name]

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        self._cols[name] = values

    def __delitem__(self, name: str) -> None:
        del self._cols[name]

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._cols))

    def __len__(self) -> int:
        return len(self._cols)

    def __repr__(self) -> str:
        held = [n for n, v in self._cols.items() if isinstance(v, _Held)]
        return f"Columns({list(self._cols)}, held={held})"


def held_arrow(columns: Mapping[str, Any], name: str) -> Any:
    """The Arrow array of column ``name`` while :class:`Columns` holds it (its values not
    made yet); None for any other column or mapping."""
    return columns.held(name) if isinstance(columns, Columns) else None


def column_objects(column: pd.Series) -> np.ndarray:
    """A canonical frame's column as an object array, None where missing, whether it holds
    objects or Arrow text (an Arrow-backed column gives ``pd.NA`` through pandas' own
    conversions, which no record may carry)."""
    if isinstance(column.dtype, pd.ArrowDtype):
        arr = pa.array(column)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return text_objects(arr)  # a repeated value's cells share one str
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
    return column.to_numpy(dtype=object)


def _text_arrow(values: Any) -> Any:
    """A text column as an Arrow string array (None unless every cell is text or missing)."""
    arr = source_arrow(values)
    if arr is None:
        return as_arrow(as_objects(values))
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr.cast(pa.string()) if pa.types.is_large_string(arr.type) else arr
    return None


_SAMPLE = 4096


def _codes(cells: Any) -> tuple[Any, np.ndarray]:
    """The distinct values of an Arrow column and each cell's position among them (-1 where
    missing)."""
    codes = pc.dictionary_encode(cells)
    index = pc.fill_null(codes.indices, -1).to_numpy(zero_copy_only=False)
    return codes.dictionary, np.asarray(index, dtype=np.intp)


def _spread(values: Any, index: np.ndarray) -> np.ndarray:
    """``values[index]`` as an object array, None where ``index`` is -1."""
    distinct = np.empty(len(values), dtype=object)
    distinct[:] = list(values)
    out = np.empty(len(index), dtype=object)  # None everywhere
    present = index >= 0
    out[present] = distinct[index[present]]
    return out


def _each_distinct(spec: FieldSpec, cells: Any, trim: bool,
                   strict: bool) -> tuple[np.ndarray, dict[int, InvalidValue]]:
    """:func:`canonical_value` of an Arrow text column, once per distinct text (the cells
    that share a text share its value); the problems by position."""
    uniques, index = _codes(cells)
    found: list[Any] = []
    failed: dict[int, InvalidValue] = {}
    for u, text in enumerate(uniques.to_pylist()):
        try:
            found.append(canonical_value(spec, text, trim=trim, strict=strict))
        except InvalidValue as exc:
            found.append(exc.value)
            failed[u] = exc
    problems = {int(j): failed[int(index[j])]
                for j in np.flatnonzero(np.isin(index, list(failed))).tolist()} if failed else {}
    return _spread(found, index), problems


def text_objects(arr: Any) -> np.ndarray:
    """An Arrow string array as an object array of str (None where missing). A column whose
    values repeat (countries, towns, terms, bank names: judged on an even sample of its rows)
    is built from its distinct values, so equal cells share one str object: a million rows of
    a handful of values cost a handful of objects, not a million."""
    if repeats(arr):
        uniques, index = _codes(arr)
        return _spread(uniques.to_numpy(zero_copy_only=False), index)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)


def repeats(arr: Any) -> bool:
    """Whether the values of a long Arrow column repeat enough that work done once per
    distinct value pays (at most a quarter distinct in an even sample of its rows)."""
    n = len(arr)
    if n <= 2 * _SAMPLE:
        return False
    sample = arr.take(pa.array(np.linspace(0, n - 1, _SAMPLE).astype(np.int64)))
    return bool(pc.count_distinct(sample, mode="only_valid").as_py() <= _SAMPLE // 4)


def _any(flags: Any) -> bool:
    """True when any cell of an Arrow boolean array is true (nulls are not)."""
    return bool(pc.any(flags).as_py())


def _ascii_column(spec: FieldSpec, arr: Any, trim: bool, strict: bool,
                  objects: bool = True) -> Column:
    """A text column in one Arrow pass: printable-ASCII cells are trimmed (spaces are the only
    whitespace they can hold) and emptied to missing right here, which is exactly what the
    scalar rules do to them; only the others (non-ASCII, control characters, too long) go
    through :func:`canonical_value`, one by one. Without ``objects``, a column with no such
    other cell comes back as Arrow only (``values`` None)."""
    fixed = arr
    if trim and _any(pc.or_(pc.starts_with(arr, " "), pc.ends_with(arr, " "))):
        fixed = pc.utf8_trim(arr, " ")  # copies the column: only when a cell needs it
    length = pc.binary_length(fixed)
    empty = pc.equal(length, 0)
    if _any(empty):
        fixed = pc.if_else(empty, pa.scalar(None, pa.string()), fixed)
    dirty = pc.invert(pc.fill_null(pc.ascii_is_printable(arr), True))
    limit = spec.max_length if strict else None
    if limit is not None:
        dirty = pc.or_(dirty, pc.fill_null(pc.greater(length, limit), False))
    rows = np.flatnonzero(mask(dirty))
    if not len(rows):
        return Column(text_objects(fixed) if objects else None, {}, fixed)
    out = text_objects(fixed)
    values, found = _each_distinct(spec, arr.take(pa.array(rows)), trim, strict)
    out[rows] = values
    problems = {int(rows[j]): exc for j, exc in found.items()}
    if problems:
        return Column(out, problems, None)
    try:  # the clean cells as they are in Arrow, the others' canonical values put in
        patched = pc.replace_with_mask(fixed, dirty, pa.array(values, type=pa.string()))
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        patched = as_arrow(out)
    return Column(out, problems, patched)


def _json_column(spec: FieldSpec, arr: Any, trim: bool, strict: bool) -> Column:
    """A JSON column held as text: each distinct text is parsed and made canonical once (the
    rows that share a text share the one value)."""
    return Column(*_each_distinct(spec, arr, trim, strict))


def column_of(spec: FieldSpec, values: Any, *, trim: bool = True,
              strict: bool = True, objects: bool = True) -> Column:
    """:func:`canonical_value` over a column (see :class:`Column`). Without ``objects``, a
    text column whose every cell is clean printable ASCII (or missing) is given as Arrow
    only: ``values`` None, ``arrow`` set."""
    native = _native_column(spec, values)
    if native is not None:
        return Column(native, {})
    arr = None
    if spec.type in ("str", "json"):
        arr = _text_arrow(values)
        if arr is not None:
            if spec.type == "json":
                return _json_column(spec, arr, trim, strict)
            return _ascii_column(spec, arr, trim, strict, objects)
    if spec.type == "str":
        out = object_values(as_objects(values))
        clean = none_mask(out)
    else:
        out = object_values(values)
        clean = none_mask(out)
    problems: dict[int, InvalidValue] = {}
    dirty = np.flatnonzero(~clean).tolist()
    if dirty:
        out, arr = out.copy(), None
    for i in dirty:
        try:
            out[i] = canonical_value(spec, out[i], trim=trim, strict=strict)
        except InvalidValue as exc:
            out[i], problems[i] = exc.value, exc
    return Column(out, problems, arr)


def canonical_column(
    spec: FieldSpec, values: Any, *, trim: bool = True, strict: bool = True,
) -> tuple[np.ndarray, dict[int, InvalidValue]]:
    """:func:`canonical_value` over a column; returns the values and the problems by position.

    A problem cell holds ``InvalidValue.value`` (None unless a usable form exists).
    """
    column = column_of(spec, values, trim=trim, strict=strict)
    assert column.values is not None  # made with objects
    return column.values, column.problems
