"""Canonical keys, values and digests: the rules that make a source row and a remote record equal.

Values (one rule per field type; :func:`canonical_value`):

- ``str``: missing (None, NaN, pandas NA) stays missing. Bytes must be valid UTF-8 (else
  ``bad_encoding``); whole numbers become their digits (Excel's ``42.0`` is ``"42"``), other
  numbers their shortest repr, dates ISO 8601. Unicode space separators (NBSP, thin space,
  ideographic space, line/paragraph separators) become an ASCII space; the text is NFC-normalised;
  surrounding whitespace (tabs and newlines included) is stripped unless the mapping says
  ``trim = false``; an empty result is missing. Strict mode (source rows) then rejects lone
  surrogates and U+FFFD (``bad_encoding``: the reader met bytes it could not decode), C0/C1
  control characters left inside (``control_chars``), and text longer than the field's limit
  in code points (``too_long``). Emoji, RTL/LTR marks, zero-width joiners and other format
  characters are kept as they are.
- ``int``: whole numbers from ints, integral floats/decimals and their text; booleans refused.
- ``float``: any finite number or its text (dot decimal separator), kept as a float, so 20,
  20.0 and "20" are equal; booleans, NaN and infinities refused.
- ``bool``: booleans, 1/0, and the words true/false, yes/no, y/n, t/f, 1/0 (any case).
- ``json``: a list or object, or text holding one; an empty list/object is missing.

Tolerant mode (records read back from iCompleat or stored in state) never refuses: a value that
cannot be converted is kept as its text, so it simply compares unequal to a good source value.

Keys: :func:`record_key` joins the canonical key fields with ``KEY_SEP`` (custom field values:
``Field + KEY_SEP + Code``). :func:`collision_key` folds a key so that variants a person would
call "the same code" meet: NFKC, casefold, surrounding whitespace stripped, and leading zeros
removed from a key part made only of digits ("0042" meets "42"; "A01" does not meet "A1").

Digest: :func:`record_digest` is the hex SHA-256 of :func:`canonical_json` of the record's sent
fields with missing values omitted (so omitted and null are equal). ``canonical_json`` is JSON
with sorted keys, no spaces, raw UTF-8 (lone surrogates passed through), and numbers in one
form: an integral float below 2**53 is written as an integer ("20"), any other float as
Python's shortest round-trip repr. The bytes depend only on the values, never on a library's
internals, so the digest is the same on every version and machine.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import numbers
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sync.entities import FieldSpec, Kind

KEY_SEP = "\x1f"
_SPACE_SEPARATORS = (0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000, 0x2028, 0x2029)
_SPACES = dict.fromkeys(_SPACE_SEPARATORS, " ")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_BAD_CODEPOINT = re.compile("[\ud800-\udfff\ufffd]")
_TRUE = frozenset({"true", "yes", "y", "t", "1"})
_FALSE = frozenset({"false", "no", "n", "f", "0"})
_EXACT_INT = 2**53


class InvalidValue(ValueError):
    """A value normalisation cannot accept; ``reason`` is a Rejection reason code.

    ``value`` is the best canonical form that could still be made (the text of an overlong
    field, for instance), or None. It never leaves normalisation: each becomes a Rejection.
    """

    def __init__(self, reason: str, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.value = value


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas NA/NaT."""
    if value is None or (isinstance(value, float) and value != value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def canonical_value(spec: FieldSpec, value: Any, *, trim: bool = True, strict: bool = True) -> Any:
    """The canonical form of ``value`` for field ``spec`` (rules in the module docstring).

    Strict mode raises :class:`InvalidValue` (a ValueError) saying why; tolerant mode keeps
    what it cannot convert as text.
    """
    if is_missing(value):
        return None
    try:
        return _CONVERTERS[spec.type](spec, value, trim, strict)
    except InvalidValue:
        if strict:
            raise
        return _tolerant_text(value, trim)


def _tolerant_text(value: Any, trim: bool) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = unicodedata.normalize("NFC", str(value).translate(_SPACES))
    return (text.strip() if trim else text) or None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidValue("bad_encoding", f"holds bytes that are not UTF-8 (byte 0x"
                               f"{value[exc.start]:02x} at {exc.start}); export as UTF-8") from None
    if isinstance(value, bool | np.bool_):
        raise InvalidValue("bad_value", "is a true/false value where text is expected")
    if isinstance(value, numbers.Number | decimal.Decimal):
        return number_text(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise InvalidValue("bad_value", f"is a {type(value).__name__}, not text")


def _text(spec: FieldSpec, value: Any, trim: bool, strict: bool) -> str | None:
    text = _as_text(value).translate(_SPACES)
    if strict and (bad := _BAD_CODEPOINT.search(text)):
        raise InvalidValue("bad_encoding", f"holds {_describe(bad.group())} at position "
                           f"{bad.start() + 1}: the export was not valid UTF-8; re-export it")
    text = unicodedata.normalize("NFC", text)
    if trim:
        text = text.strip()
    if strict and (ctl := _CONTROL.search(text)):
        raise InvalidValue("control_chars", f"holds the control character "
                           f"{_describe(ctl.group())} at position {ctl.start() + 1}; remove it")
    if strict and spec.max_length is not None and len(text) > spec.max_length:
        raise InvalidValue("too_long", f"is {len(text)} characters long, the limit is "
                           f"{spec.max_length}; shorten it", value=text)
    return text or None


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def _number(value: Any, trim: bool) -> float | int:
    if isinstance(value, bool | np.bool_):
        raise InvalidValue("bad_value", "is true/false where a number is expected")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real | decimal.Decimal):
        number = float(value)
    else:
        text = _text(FieldSpec("n", max_length=None), value, True, True)
        if text is None:
            raise InvalidValue("missing_value", "is empty")
        try:
            number = float(text)
        except ValueError:
            raise InvalidValue("bad_value", f"{text[:30]!r} is not a number "
                               "(use digits and a dot)") from None
    if not math.isfinite(number):
        raise InvalidValue("bad_value", "is not a finite number")
    return number


def _int(spec: FieldSpec, value: Any, trim: bool, strict: bool) -> int | None:
    if isinstance(value, str | bytes) and not _as_text(value).strip():
        return None
    number = _number(value, trim)
    if isinstance(number, float):
        if not number.is_integer():
            raise InvalidValue("bad_value", f"{number!r} is not a whole number")
        return int(number)
    return number


def _float(spec: FieldSpec, value: Any, trim: bool, strict: bool) -> float | None:
    if isinstance(value, str | bytes) and not _as_text(value).strip():
        return None
    return float(_number(value, trim)) + 0.0  # + 0.0 turns -0.0 into 0.0


def _bool(spec: FieldSpec, value: Any, trim: bool, strict: bool) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Real) and value in (0, 1):
        return bool(value)
    text = _as_text(value).strip().casefold() if isinstance(value, str | bytes) else None
    if text == "":
        return None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise InvalidValue("bad_value", f"{str(value)[:30]!r} is not true/false, yes/no or 1/0")


def _json(spec: FieldSpec, value: Any, trim: bool, strict: bool) -> Any:
    if isinstance(value, str | bytes):
        text = _as_text(value).strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise InvalidValue("bad_value", "is not valid JSON") from None
    if not isinstance(value, list | tuple | dict):
        raise InvalidValue("bad_value", "must be a JSON list or object")
    try:
        canonical_json(value)
    except (TypeError, ValueError):
        raise InvalidValue("bad_value", "holds a value JSON cannot carry (NaN, bytes...)") from None
    return plain(value) or None


_CONVERTERS = {"str": _text, "int": _int, "float": _float, "bool": _bool, "json": _json}


def plain(value: Any) -> Any:
    """``value`` with tuples as lists and numpy scalars as Python ones, recursively."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def number_text(value: Any) -> str:
    """The one text form of a number: integral floats below 2**53 as integers, else repr."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    number = float(value)
    if number.is_integer() and abs(number) < _EXACT_INT:
        return str(int(number))
    return repr(number)


def _canon(value: Any) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < _EXACT_INT else value
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    if isinstance(value, np.generic | decimal.Decimal):
        return _canon(value.item() if isinstance(value, np.generic) else float(value))
    return value


def canonical_json(value: Any) -> str:
    """Canonical JSON text of ``value`` (sorted keys, no spaces, UTF-8, one number form)."""
    return json.dumps(_canon(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of ``text`` as UTF-8 (lone surrogates passed through)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def record_digest(kind: Kind, record: Mapping[str, Any], *, trim: bool = True) -> str:
    """Stable digest of a record's sent fields (tolerant canonical values, None omitted)."""
    values = {name: canonical_value(kind.field(name), record.get(name), trim=trim, strict=False)
              for name in kind.sent_fields}
    return sha256_hex(canonical_json({k: v for k, v in values.items() if v is not None}))


def _value_json(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return str(encode_basestring(value))
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return number_text(value)
    return canonical_json(value)


def _fragment(spec: FieldSpec) -> Any:
    prefix = encode_basestring(spec.name) + ":"
    return lambda v: prefix + _value_json(v)


def digests(kind: Kind, columns: Mapping[str, np.ndarray], rows: Iterable[int]) -> list[str]:
    """Digests of ``rows`` of canonical ``columns`` (field name -> object array).

    Equal to :func:`record_digest` of each row when the values are already canonical; it skips
    re-canonicalisation, which is what makes it fast.
    """
    rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.intp)
    names = sorted(kind.sent_fields)
    parts = []
    for name in names:
        encode = _fragment(kind.field(name))
        parts.append([None if v is None else encode(v) for v in columns[name][rows]])
    sha = hashlib.sha256
    return [sha(("{" + ",".join(filter(None, row)) + "}").encode("utf-8", "surrogatepass"))
            .hexdigest() for row in zip(*parts, strict=True)]


def record_key(kind: Kind, record: Mapping[str, Any]) -> str:
    """The key of ``record``: its canonical key fields joined by KEY_SEP; ValueError if missing."""
    parts = []
    for name in kind.key:
        part = canonical_value(kind.field(name), record.get(name), strict=False)
        if part is None:
            raise ValueError(f"{kind.name}: the record has no {name}; every record needs one")
        parts.append(str(part))
    return KEY_SEP.join(parts)


def _fold(part: str) -> str:
    part = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", part).casefold()).strip()
    if part.isascii() and part.isdigit():
        return part.lstrip("0") or "0"
    return part


def collision_key(key: str) -> str:
    """``key`` folded so that case, whitespace, width and zero-padding variants are equal."""
    return KEY_SEP.join(_fold(part) for part in key.split(KEY_SEP))


# Vectorised forms. A value that is plain printable ASCII, already trimmed and within its limit
# is its own canonical form, so only the other ("dirty") cells go through the scalar rules;
# the clean ones keep their very objects (no copy), which keeps a million rows fast and small.


def _objects(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy(dtype=object)
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values.astype(object, copy=False)
    return pd.Series(list(values), dtype=object).to_numpy()


def object_values(values: Any) -> np.ndarray:
    """``values`` (Series, array, iterable) as a 1-D object array, None for every missing value."""
    out = _objects(values)
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
        out = _objects(values)
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


def _strip_zeros(parts: Any) -> Any:
    """Leading zeros off the all-digit parts (the regex runs only where a part starts "0")."""
    zero = pc.fill_null(pc.starts_with(parts, "0"), False)
    if not pc.any(zero).as_py():
        return parts
    stripped = pc.replace_substring_regex(pc.filter(parts, zero), "^0+([0-9]+)$", r"\1")
    return pc.replace_with_mask(parts, zero, stripped)


def _folded(keys: np.ndarray, arrow: Any = None) -> Any:
    """The collision keys of ``keys`` as an Arrow string array (null for a missing key)."""
    arr = as_arrow(keys) if arrow is None else arrow
    if arr is None:
        return pa.array([None if k is None else collision_key(str(k)) for k in keys.tolist()],
                        type=pa.string())
    fast = pc.fill_null(pc.match_substring_regex(arr, "^[ -~\x1f]*$"), False)
    multipart = bool(pc.any(pc.match_substring(arr, KEY_SEP)).as_py())
    if multipart:
        parts = pc.split_pattern(pc.ascii_lower(pc.filter(arr, fast)), KEY_SEP)
        flat = _strip_zeros(pc.utf8_trim(pc.list_flatten(parts), " "))
        folded = pc.binary_join(pa.ListArray.from_arrays(parts.offsets, flat), KEY_SEP)
    else:
        folded = _strip_zeros(pc.utf8_trim(pc.ascii_lower(pc.filter(arr, fast)), " "))
    slow = np.flatnonzero(~mask(fast))
    if not len(slow):
        return folded
    rest = pa.array([None if keys[i] is None else collision_key(str(keys[i]))
                     for i in slow.tolist()], type=pa.string())
    order = np.concatenate([np.flatnonzero(mask(fast)), slow])
    return pa.concat_arrays([folded, rest]).take(pa.array(np.argsort(order, kind="stable")))


def collision_keys(keys: Any, arrow: Any = None) -> np.ndarray:
    """:func:`collision_key` of every key (printable-ASCII keys folded in one vector pass).

    ``arrow``, when given, is ``keys`` already as an Arrow string array.
    """
    values = object_values(keys) if arrow is None else _objects(keys)
    if not len(values):
        return np.empty(0, dtype=object)
    return np.asarray(_folded(values, arrow).to_numpy(zero_copy_only=False), dtype=object)


def _fixed_width(arrow: Any) -> np.ndarray | None:
    """Plain-ASCII keys as a numpy fixed-width byte array (NUL padded), else None."""
    if arrow is None or arrow.null_count or not len(arrow):
        return None
    if not pc.all(pc.string_is_ascii(arrow)).as_py() or pc.any(
            pc.match_substring(arrow, "\x00")).as_py():
        return None
    width = max(1, pc.max(pc.binary_length(arrow)).as_py())
    padded = pc.utf8_rpad(arrow, width=width, padding="\x00")
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)
    return np.frombuffer(padded.buffers()[2], dtype=f"S{width}", count=len(arrow),
                         offset=int(offsets[padded.offset]))


def positions(values: np.ndarray, within: np.ndarray, *, values_arrow: Any = None,
              within_arrow: Any = None) -> np.ndarray:
    """For each of ``values``, its position in ``within`` (unique keys), or -1 if absent.

    Sorted plain-ASCII keys on both sides are matched by binary search over fixed-width bytes;
    other keys through Arrow's hash lookup, or a dict when they are not all text.
    """
    left = values_arrow if values_arrow is not None else as_arrow(values)
    right = within_arrow if within_arrow is not None else as_arrow(within)
    if left is not None and right is not None:
        if strictly_increasing(within, right):
            found = _search(_fixed_width(left), _fixed_width(right))
            if found is not None:
                return found
        hits = pc.fill_null(pc.index_in(left, value_set=right), -1)
        return np.asarray(hits.to_numpy(zero_copy_only=False), dtype=np.int64)
    lookup = {k: i for i, k in enumerate(within.tolist())}
    return np.array([lookup.get(k, -1) for k in values.tolist()], dtype=np.int64)


def _search(left: np.ndarray | None, right: np.ndarray | None) -> np.ndarray | None:
    if left is None or right is None:
        return None
    width = max(left.dtype.itemsize, right.dtype.itemsize)
    left, right = left.astype(f"S{width}"), right.astype(f"S{width}")
    at = np.minimum(np.searchsorted(right, left), len(right) - 1)
    return np.where(right[at] == left, at, -1).astype(np.int64)


def strictly_increasing(values: np.ndarray, arrow: Any = None) -> bool:
    """True when the keys are sorted and unique (code point order)."""
    arr = arrow if arrow is not None else as_arrow(values)
    if len(values if arr is None else arr) < 2:
        return True
    if arr is None or arr.null_count:
        return bool(pd.Index(values, dtype=object).is_monotonic_increasing
                    and pd.Index(values, dtype=object).is_unique)
    return bool(pc.all(pc.greater(arr[1:], arr[:-1])).as_py())


def duplicate_groups(keys: np.ndarray, arrow: Any = None) -> list[list[int]]:
    """Positions of ``keys`` grouped by collision key, for every group of two or more.

    Printable-ASCII keys are folded and counted in Arrow; only the rest, and the members of
    colliding groups, are touched in Python.
    """
    if not len(keys):
        return []
    folded = _folded(_objects(keys), arrow)
    if not folded.null_count and strictly_increasing(np.empty(0, object), folded):
        return []  # folding kept every key distinct and in order: nothing collides
    encoded = pc.dictionary_encode(folded).indices
    codes = np.asarray(pc.fill_null(encoded, -1).to_numpy(zero_copy_only=False), np.int64)
    counts = np.bincount(codes[codes >= 0], minlength=1)
    groups: dict[int, list[int]] = {}
    for pos in np.flatnonzero((codes >= 0) & (counts[np.maximum(codes, 0)] > 1)).tolist():
        groups.setdefault(int(codes[pos]), []).append(pos)
    return [groups[c] for c in sorted(groups, key=lambda c: groups[c][0])]
