"""A short ``repr`` for the result types that can hold a million keys.

A dataclass's own repr writes every element of every field. ``asyncio.run`` formats the result
of a command's main task when it puts the interrupt handler back (Python 3.11 formats the old
handler, which names the task), and a log line or a failed assertion may format a result too:
for a dry run that creates a million suppliers that was three reprs of every key, 0.6 s and
tens of MB of text nobody reads. :func:`brief_repr` names a long collection by its size.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

#: A collection longer than this is shown as its type and size.
BRIEF_ITEMS = 6
_PLAIN = (list, tuple, set, frozenset, dict)


def brief_repr(obj: Any) -> str:
    """``Type(field=value, ...)`` over the dataclass fields that take part in the repr, with
    each collection of more than :data:`BRIEF_ITEMS` elements shown as ``<tuple of N>``."""
    shown = ", ".join(f"{f.name}={brief_value(getattr(obj, f.name))}"
                      for f in fields(obj) if f.repr)
    return f"{type(obj).__qualname__}({shown})"


def brief_value(value: Any) -> str:
    """``repr(value)``, with every collection of more than :data:`BRIEF_ITEMS` elements, at
    any depth, shown as ``<type of N>``."""
    if not isinstance(value, _PLAIN):
        return repr(value)
    if len(value) > BRIEF_ITEMS:
        return f"<{type(value).__name__} of {len(value)}>"
    if type(value) not in _PLAIN:  # a named tuple, say: a short one keeps its own repr
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{brief_value(k)}: {brief_value(v)}"
                               for k, v in value.items()) + "}"
    inner = ", ".join(brief_value(v) for v in value)
    if isinstance(value, list):
        return f"[{inner}]"
    if isinstance(value, tuple):
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if not value:
        return f"{type(value).__name__}()"
    return f"{{{inner}}}" if isinstance(value, set) else f"frozenset({{{inner}}})"
