"""Bounded number parsing: bombs and non-finite values are refused before any conversion."""

import time
from decimal import Decimal

import pytest

from connectors.icompleat.models import parse_transaction
from sync.foundation.numbers import NumberRefused, bounded_decimal, loads

BOMBS = ["1e99999999", "Infinity", "-inf", "NaN", "9" * 70, "1e18", 10**40, float("inf")]


@pytest.mark.parametrize("value", BOMBS, ids=[str(b)[:12] for b in BOMBS])
def test_bombs_are_refused_fast(value: object) -> None:
    """Each bomb is refused in well under a millisecond, naming why."""
    started = time.perf_counter()
    with pytest.raises(NumberRefused):
        bounded_decimal(value)
    assert time.perf_counter() - started < 0.01


def test_ordinary_numbers_pass_and_text_is_none() -> None:
    """Numbers within the bounds convert exactly; text that is no number gives None."""
    assert bounded_decimal("12.50") == Decimal("12.50")
    assert bounded_decimal(7) == 7
    assert bounded_decimal(0.1) == Decimal("0.1")
    assert bounded_decimal("abc") is None


def test_loads_keeps_refused_literals_as_text() -> None:
    """JSON numbers past the bounds and NaN/Infinity stay text; others are numbers."""
    body = loads('{"a": 1e99999999, "b": Infinity, "c": 12.5, "d": 3, "e": ' + "9" * 5000 + "}")
    assert body["a"] == "1e99999999"
    assert body["b"] == "Infinity"
    assert body["c"] == 12.5
    assert body["d"] == 3
    assert body["e"] == "9" * 5000


def test_transaction_with_a_bomb_names_the_field() -> None:
    """A refused line number becomes a problem of the transaction, not a conversion."""
    tx = parse_transaction({"Id": "t1", "Lines": [{"Number": "1e99999999"}],
                            "Net": {"Base": {"Value": "Infinity"}}})
    assert tx.lines[0].number is None
    assert tx.net.base is None
    assert any(p.startswith("Lines.0.Number") for p in tx.problems)
    assert any(p.startswith("Net.Base.Value") for p in tx.problems)
