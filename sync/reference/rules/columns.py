"""Canonical values a column at a time: :func:`canonical_value` over a whole column, fast.

A value that is plain printable ASCII, already trimmed and within its limit is its own
canonical form, so only the other ("dirty") cells go through the scalar rules; the clean ones
keep their very objects (no copy), which keeps a million rows fast and small. Also here: the
small numpy/Arrow conversions the other vectorised code (keys, checks, frame) shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sync.foundation.entities import FieldSpec
from sync.reference.rules.values import InvalidValue, canonical_value


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


def _native_column(spec: FieldSpec, values: Any) -> np.ndarray | None:
    """Numbers and booleans straight from a numpy column, or None when the rules must decide."""
    kind = getattr(getattr(values, "dtype", None), "kind", "")
    if spec.type == "float" and kind in "iuf":
        numbers_ = np.asarray(values, dtype="float64") + 0.0
        if not np.isfinite(numbers_[~np.isnan(numbers_)]).all():
            return None
        out = np.array(numbers_.tolist(), dtype=object)
        out[np.isnan(numbers_)] = None
        return out
    if (spec.type == "int" and kind in "iu") or (spec.type == "bool" and kind == "b"):
        return np.array(np.asarray(values).tolist(), dtype=object)
    return None


@dataclass(frozen=True)
class Column:
    """A canonical column: values, problems by position, and (when every cell came through
    unchanged as text or None) the same values as an Arrow string array for reuse."""

    values: np.ndarray
    problems: dict[int, InvalidValue]
    arrow: Any = None


def column_of(spec: FieldSpec, values: Any, *, trim: bool = True,
              strict: bool = True) -> Column:
    """:func:`canonical_value` over a column (see :class:`Column`)."""
    native = _native_column(spec, values)
    if native is not None:
        return Column(native, {})
    arr = None
    if spec.type == "str":
        out = as_objects(values)
        arr = as_arrow(out)
        if arr is None:
            out = object_values(out)
            clean = none_mask(out)
        else:
            clean = _clean_mask(arr, trim, spec.max_length if strict else None)
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
    return column.values, column.problems
