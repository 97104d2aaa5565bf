"""The few SQL pieces that differ between SQLite and PostgreSQL, and the host clock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Float, cast, extract, func
from sqlalchemy.sql.elements import ColumnElement

from sync.state.peek import UNIX_EPOCH_JULIAN

T = TypeVar("T")


def db_epoch(dialect: str) -> ColumnElement[float]:
    """Seconds since the epoch by the DATABASE's clock (on SQLite, that is the host's)."""
    if dialect == "postgresql":
        return cast(extract("epoch", func.clock_timestamp()), Float(precision=53))
    return (func.julianday("now", type_=Float(precision=53)) - UNIX_EPOCH_JULIAN) * 86400.0


def upsert_insert(dialect: str, model: Any) -> Any:
    """An INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update`` for ``dialect``
    (each dialect module imported when first used: a SQLite user never loads PostgreSQL's)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(model)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(model)


def batched(items: Iterable[T], size: int = 1000) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size`` (keeps IN lists under the drivers' limits)."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
