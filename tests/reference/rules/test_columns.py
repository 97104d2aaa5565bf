"""Whole text columns as Python objects (the canonical frame's columns)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sync.reference.rules.columns import text_objects


@pytest.mark.parametrize("values", [
    ["GB", "IE", None, "GB", "FR"] * 5000,           # repeats: built from distinct values
    [f"S{i:06d}" for i in range(20_000)] + [None],    # distinct: converted cell by cell
    ["Zoë", None] * 6000,                             # non-ASCII, repeating
    [None] * 10_000,
    [],
])
def test_text_objects_equal_arrow_to_numpy(values: list[str | None]) -> None:
    """text_objects() gives what Arrow's to_numpy gives, cell for cell, None where missing;
    repeated values share one object."""
    arr = pa.array(values, type=pa.string())
    got = text_objects(arr)
    assert got.dtype == object
    assert got.tolist() == values
    if values and values[0] == "GB":
        assert got[0] is got[3]
