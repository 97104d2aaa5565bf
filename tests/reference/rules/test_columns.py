"""Whole text columns as Python objects (the canonical frame's columns)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sync.reference.rules import checks, columns
from sync.reference.rules.columns import text_objects
from sync.reference.rules.findings import Work
from tests.reference.rules.support import SUPPLIERS


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


@pytest.mark.parametrize("pattern", [checks.EMAIL_PATTERN, checks._SORT_CODE,
                                     checks._BIC_SHAPE, checks._IBAN_SHAPE])
@pytest.mark.parametrize("match", [True, False])
def test_a_repeated_column_is_matched_once_per_value_with_the_same_rows(
        pattern: str, match: bool) -> None:
    """A long column of few distinct values (missing cells among them) is matched once per
    distinct value: the rows found are those a match of every cell finds."""
    values = ["20-20-15", "BUKBGB22", None, "12345", "a@b.co", "GB33BUKB20201555555555", "",
              "bukbgb22xxx", "x y@z.com"]
    cells = [values[(i * 7) % len(values)] for i in range(10_000)]
    texts = pa.array(cells, type=pa.string())
    assert columns.repeats(texts)
    work = Work(SUPPLIERS, len(cells), {}, {"Email": np.array(cells, dtype=object)},
                arrow={"Email": texts})
    every = pc.match_substring_regex(texts, pattern)
    wanted = every if match else pc.invert(every)
    expected = np.flatnonzero(pc.fill_null(wanted, False).to_numpy(zero_copy_only=False))
    found = checks._rows_matching(work, "Email", pattern, match=match)
    assert found.tolist() == expected.tolist()
    assert len(found)


def test_failing_values_are_found_alike_from_arrow_or_objects() -> None:
    """The rows of failing bank details, with their problems, are the same whether the
    distinct values are found in the Arrow column or in the objects."""
    ibans = ["GB33BUKB20201555555556", "GB33BUKB20201555555555", None,
             "GB33BUKB20201555555556", "DE89370400440532013000", "GB00XXXX00000000000000"]
    values = np.array(ibans * 50, dtype=object)
    rows = np.flatnonzero([v is not None for v in values.tolist()])
    texts = pa.array(values.tolist(), type=pa.string())
    from_objects = checks._rows_failing(values, rows, checks._iban_problem)
    from_arrow = checks._rows_failing(values, rows, checks._iban_problem, texts)
    assert from_arrow == from_objects
    assert sorted({r % 6 for r in from_arrow}) == [0, 3, 5]
