"""The per-kind ``where`` filter: a small SQL-like language over the source's own columns (pure).

``Status <> 'Inactive' AND "Account Type" = 'Posting'``: comparisons (``=``, ``<>``/``!=``,
``<``, ``<=``, ``>``, ``>=``), ``IN (...)``, ``LIKE`` (``%`` and ``_``), ``IS [NOT] EMPTY`` (or
NULL), joined with AND, OR, NOT and parentheses. Parsed by recursive descent into a small tuple
tree, evaluated row by row; anything it cannot read is a ConfigError with key ``where``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sync.foundation.errors import ConfigError


def cell_text(value: Any) -> str:
    """A cell as text for templates and filters ("" for missing)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


class Columns:
    """The source's columns by case-insensitive name."""

    def __init__(self, raw: pd.DataFrame) -> None:
        self.raw = raw
        self.lookup = {str(c).casefold(): c for c in raw.columns}

    def has(self, name: str) -> bool:
        return name.strip().casefold() in self.lookup

    def get(self, name: str) -> pd.Series:
        return self.raw[self.lookup[name.strip().casefold()]]

    def names(self) -> str:
        return ", ".join(map(str, self.raw.columns))



_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^']|'')*')
  | (?P<num>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<quoted>"(?:[^"]|"")*"|\[[^\]]*\]|`[^`]*`)
  | (?P<op><>|!=|<=|>=|=|<|>|\(|\)|,)
  | (?P<word>[A-Za-z_][\w.]*)
)""", re.X)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "empty", "like"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None or found.end() == pos:
            raise ConfigError(f"cannot read the where filter at {text[pos:pos + 20]!r}; write "
                              "it like: Status <> 'Inactive' AND \"Account Type\" = 'Posting'",
                              key="where")
        group = str(found.lastgroup)
        value = found.group(group)
        if group == "word" and value.lower() in _KEYWORDS:
            out.append(_Tok("kw", value.lower()))
        elif group == "quoted":
            out.append(_Tok("col", value[1:-1].replace('""', '"')))
        elif group == "word":
            out.append(_Tok("col", value))
        elif group == "str":
            out.append(_Tok("lit", value[1:-1].replace("''", "'")))
        else:
            out.append(_Tok(group, value))
        pos = found.end()
    return out


class _Parser:
    """Recursive descent over: or_expr := and_expr (OR and_expr)*; and_expr := not_expr
    (AND not_expr)*; not_expr := NOT not_expr | '(' or_expr ')' | comparison."""

    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (kind and tok.kind != kind) or (text and tok.text != text):
            wanted = text or kind or "more"
            got = "the end" if tok is None else repr(tok.text)
            raise ConfigError(f"where filter: expected {wanted} but found {got}", key="where")
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind in ("kw", "op") and tok.text == text:
            self.i += 1
            return True
        return False

    def or_expr(self) -> tuple[Any, ...]:
        node = self.and_expr()
        while self.accept("or"):
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> tuple[Any, ...]:
        node = self.not_expr()
        while self.accept("and"):
            node = ("and", node, self.not_expr())
        return node

    def not_expr(self) -> tuple[Any, ...]:
        if self.accept("not"):
            return ("not", self.not_expr())
        if self.accept("("):
            node = self.or_expr()
            self.take("op", ")")
            return node
        return self.comparison()

    def operand(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or tok.kind not in ("col", "lit", "num"):
            raise ConfigError("where filter: expected a column or a value but found "
                              f"{'the end' if tok is None else repr(tok.text)}", key="where")
        self.i += 1
        return (tok.kind, tok.text)

    def comparison(self) -> tuple[Any, ...]:
        left = self.operand()
        if self.accept("is"):
            negate = self.accept("not")
            word = self.take("kw")
            if word.text not in ("null", "empty"):
                raise ConfigError("where filter: IS takes NULL or EMPTY", key="where")
            node: tuple[Any, ...] = ("empty", left)
            return ("not", node) if negate else node
        negate = self.accept("not")
        if self.accept("in"):
            self.take("op", "(")
            values = [self.operand()]
            while self.accept(","):
                values.append(self.operand())
            self.take("op", ")")
            node = ("in", left, values)
            return ("not", node) if negate else node
        if self.accept("like"):
            node = ("like", left, self.operand())
            return ("not", node) if negate else node
        if negate:
            raise ConfigError("where filter: NOT here must be followed by IN or LIKE", key="where")
        op = self.take("op")
        if op.text not in ("=", "<>", "!=", "<", "<=", ">", ">="):
            raise ConfigError(f"where filter: {op.text!r} is not a comparison", key="where")
        return ("cmp", op.text, left, self.operand())


def parse_where(text: str) -> tuple[Any, ...]:
    """The filter as a small tree; ConfigError (key ``where``) naming what could not be read.

    Grammar: comparisons ``col = 'text'`` (``=``, ``<>``/``!=``, ``<``, ``<=``, ``>``, ``>=``),
    ``col IN ('a', 'b')``, ``col LIKE 'Z%'``, ``col IS [NOT] EMPTY`` (or NULL), joined with
    AND, OR, NOT and parentheses. Columns are bare names or quoted (``"Account Type"``,
    ``[Account Type]``); text compares case-insensitively, ignoring surrounding spaces;
    numbers compare as numbers when both sides are numbers.
    """
    parser = _Parser(_tokens(text))
    node = parser.or_expr()
    if parser.peek() is not None:
        raise ConfigError(f"where filter: unexpected {parser.peek().text!r}",  # type: ignore[union-attr]
                          key="where")
    return node


def _values(operand: tuple[str, str], cols: Columns) -> list[str]:
    kind, text = operand
    if kind == "col":
        if not cols.has(text):
            raise ConfigError(f"where filter: the source has no column {text!r}; it has: "
                              f"{cols.names()}", key="where")
        return [cell_text(v).strip() for v in cols.get(text).tolist()]
    return [text] * len(cols.raw)


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _compare(op: str, a: str, b: str) -> bool:
    x, y = _number(a), _number(b)
    left: Any = x if x is not None and y is not None else a.casefold()
    right: Any = y if x is not None and y is not None else b.casefold()
    return bool({"=": left == right, "<>": left != right, "!=": left != right,
                 "<": left < right, "<=": left <= right, ">": left > right,
                 ">=": left >= right}[op])


def _like(value: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.I | re.S) is not None


def evaluate(node: tuple[Any, ...], cols: Columns) -> np.ndarray:
    """Which rows the filter keeps."""
    op = node[0]
    if op in ("and", "or"):
        left, right = evaluate(node[1], cols), evaluate(node[2], cols)
        return np.asarray(left & right if op == "and" else left | right, dtype=bool)
    if op == "not":
        return ~evaluate(node[1], cols)
    if op == "empty":
        return np.array([v == "" for v in _values(node[1], cols)], dtype=bool)
    if op == "in":
        left_values = _values(node[1], cols)
        options = [_values(v, cols) for v in node[2]]
        return np.array([any(_compare("=", v, o[i]) for o in options)
                         for i, v in enumerate(left_values)], dtype=bool)
    if op == "like":
        pairs = zip(_values(node[1], cols), _values(node[2], cols), strict=True)
        return np.array([_like(v, p) for v, p in pairs], dtype=bool)
    pairs = zip(_values(node[2], cols), _values(node[3], cols), strict=True)
    return np.array([_compare(node[1], a, b) for a, b in pairs], dtype=bool)
