"""Canonical values: one rule per field type, and the one JSON text of a value.

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
  20.0 and "20" are equal; booleans, NaN and infinities refused. Numbers (int and float) pass
  the bounds of :mod:`sync.foundation.numbers` first (length, digits, exponent, magnitude).
- ``bool``: booleans, 1/0, and the words true/false, yes/no, y/n, t/f, 1/0 (any case).
- ``json``: a list or object, or text holding one; an empty list/object is missing.

Tolerant mode (records read back from iCompleat or stored in state) never refuses: a value that
cannot be converted is kept as its text, so it simply compares unequal to a good source value.

JSON: :func:`canonical_json` has sorted keys, no spaces, raw UTF-8 (lone surrogates passed
through), and numbers in one form: an integral float below 2**53 is written as an integer
("20"), any other float as Python's shortest round-trip repr. The bytes depend only on the
values, never on a library's internals, which is what keeps digests stable
(:mod:`sync.reference.rules.keys`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import numbers
import re
import unicodedata
from typing import Any

import numpy as np

from sync.foundation.entities import FieldSpec
from sync.foundation.numbers import NumberRefused, bounded_decimal, checked_text

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
    try:
        if isinstance(value, numbers.Integral):
            return int(bounded_decimal(int(value)) or 0)
        if isinstance(value, numbers.Real | decimal.Decimal):
            number = float(value)
        else:
            text = _text(FieldSpec("n", max_length=None), value, True, True)
            if text is None:
                raise InvalidValue("missing_value", "is empty")
            if checked_text(text) is None:
                raise InvalidValue("bad_value", f"{text[:30]!r} is not a number "
                                   "(use digits and a dot)")
            number = float(text)
        bounded_decimal(number)
    except NumberRefused as exc:
        raise InvalidValue("bad_value", f"is refused: {exc}") from None
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
        if all(type(v) is str for v in value):  # a plan's list of a million keys
            return list(value)
        return [_canon(v) for v in value]
    if isinstance(value, np.generic | decimal.Decimal):
        return _canon(value.item() if isinstance(value, np.generic) else float(value))
    return value


def canonical_json(value: Any) -> str:
    """Canonical JSON text of ``value`` (sorted keys, no spaces, UTF-8, one number form)."""
    return json.dumps(_canon(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)
