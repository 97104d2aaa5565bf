"""Bounded number parsing for every value that comes from outside (pushes, iCompleat, sources).

A number is checked as TEXT before any conversion: at most :data:`MAX_CHARS` characters, at
most :data:`MAX_DIGITS` significant digits, an exponent of at most four digits, and a magnitude
below ``10**MAX_MAGNITUDE``. ``NaN`` and the infinities are refused. So ``"1e99999999"`` costs
a regular expression, never minutes of ``int(Decimal(...))`` on the event loop.

:func:`loads` is ``json.loads`` with the same rule: a number literal that passes is a float or
an int as usual; one that does not (``1e99999999``, a 5,000-digit integer, ``NaN``,
``Infinity``) is kept as its text, so that the field that holds it is refused with a reason by
whoever reads it (a transaction is quarantined, a pushed body answered 400), never converted.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

MAX_CHARS = 64
MAX_DIGITS = 34
MAX_MAGNITUDE = 18
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?")
_NUMERIC_SHAPE = re.compile(r"[+-]?[\d.]+(?:[eE][+-]?\d+)?")
_NON_FINITE = frozenset({"nan", "snan", "inf", "infinity"})


class NumberRefused(ValueError):
    """A number outside the bounds (too long, too many digits, too large, not finite)."""


def _refuse(text: str, why: str) -> NumberRefused:
    shown = text if len(text) <= 24 else f"{text[:20]}...({len(text)} characters)"
    return NumberRefused(f"{shown!r} {why}")


def checked_text(text: str) -> str | None:
    """``text`` stripped, when it is a number within the bounds; None when it is no number.

    NumberRefused when it looks like a number but passes a bound, or names a non-finite value.
    """
    value = text.strip()
    if value.lstrip("+-").casefold() in _NON_FINITE:
        raise _refuse(value, "is not a finite number")
    looks_numeric = _NUMERIC_SHAPE.fullmatch(value) is not None
    if len(value) > MAX_CHARS:
        if looks_numeric:
            raise _refuse(value, f"is longer than {MAX_CHARS} characters")
        return None
    if _NUMBER.fullmatch(value) is None:
        if looks_numeric:
            raise _refuse(value, "has an exponent of more than 4 digits")
        return None
    return value


def bounded_decimal(value: Any) -> Decimal | None:
    """A finite Decimal within the bounds from an int, float, Decimal or text; None for text
    that is no number (and for None or a boolean); NumberRefused past a bound."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise _refuse(repr(value), "is not a finite number")
    if isinstance(value, int):
        if abs(value) >= 10 ** MAX_MAGNITUDE:
            raise NumberRefused(f"a whole number of {value.bit_length()} bits is "
                                f"{10 ** MAX_MAGNITUDE:.0e} or more")
        return Decimal(value)
    if isinstance(value, Decimal):
        number = value
    else:
        text = checked_text(repr(value) if isinstance(value, float) else str(value))
        if text is None:
            return None
        number = Decimal(text)
    return _within_bounds(number)


def _within_bounds(number: Decimal) -> Decimal:
    if not number.is_finite():
        raise NumberRefused(f"{number} is not a finite number")
    if number and number.adjusted() >= MAX_MAGNITUDE:
        raise NumberRefused(f"a number of magnitude 1e{number.adjusted()} is "
                            f"{10 ** MAX_MAGNITUDE:.0e} or more")
    if len(number.as_tuple().digits) > MAX_DIGITS:
        raise NumberRefused(f"a number with {len(number.as_tuple().digits)} significant digits "
                            f"has more than {MAX_DIGITS}")
    return number


def _literal(text: str) -> Any:
    try:
        number = bounded_decimal(text)
    except NumberRefused:
        return text
    if number is None:
        return text
    return int(number) if _is_int_literal(text) else float(number)


def _is_int_literal(text: str) -> bool:
    return not any(c in text for c in ".eE")


def loads(content: str | bytes) -> Any:
    """``json.loads`` where a number past the bounds (or NaN, Infinity) stays its text."""
    return json.loads(content, parse_int=_literal, parse_float=_literal, parse_constant=str)
