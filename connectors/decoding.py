"""Text that does not decode: where it is, and which encoding would read it.

An export written by a Windows ERP (Sage 50, an old Excel "Save as CSV") is usually
Windows-1252, not UTF-8. Reading it as UTF-8 must not crash, and must not silently load a
mangled supplier name either: :func:`bad_bytes` finds the first byte that does not decode, with
its line, and :func:`suggest_encoding` names an encoding the whole text does decode with, so the
error can say exactly what to set.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

# Tried in this order when suggesting: the BOM-marked ones, then what Windows exports use.
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_CANDIDATES = ("utf-8", "cp1252", "latin-1")


@dataclass(frozen=True)
class BadBytes:
    """The first undecodable bytes of a text: byte offset, 1-based line, the bytes around."""

    offset: int
    line: int
    snippet: bytes
    suggestion: str | None

    def describe(self, encoding: str) -> str:
        """``line 3 holds bytes that are not utf-8 (b'Caf\\xe9 Ltd')``."""
        return f"line {self.line} holds bytes that are not {encoding} ({self.snippet!r})"


def suggest_encoding(data: bytes, tried: str) -> str | None:
    """An encoding (other than ``tried``) the whole of ``data`` decodes with, or None."""
    for bom, name in _BOMS:
        if data.startswith(bom) and codecs.lookup(name).name != codecs.lookup(tried).name:
            return name
    for name in _CANDIDATES:
        if codecs.lookup(name).name == codecs.lookup(tried).name:
            continue
        try:
            data.decode(name)
        except UnicodeDecodeError:
            continue
        return name
    return None


def bad_bytes(data: bytes, encoding: str) -> BadBytes | None:
    """The first bytes of ``data`` that ``encoding`` cannot decode, or None when all decode.

    LookupError when ``encoding`` is not a known codec.
    """
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        start = exc.start
        line = data.count(b"\n", 0, start) + 1
        begin = max(data.rfind(b"\n", 0, start) + 1, start - 30)
        end = data.find(b"\n", start)
        snippet = data[begin:min(end if end >= 0 else len(data), start + 30)].rstrip(b"\r")
        return BadBytes(start, line, snippet, suggest_encoding(data, encoding))
    return None


def decode_hint(suggestion: str | None) -> str:
    """What to set, as a sentence fragment for an error message."""
    if suggestion is None:
        return "set encoding to the one the ERP writes"
    return f"it reads as {suggestion}: set encoding = \"{suggestion}\""
