"""Plain-data helpers and Hypothesis strategies for the pure core's tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pytest
from hypothesis import strategies as st

from sync.foundation.entities import Kind, get_kind
from sync.reference.rules.columns import column_objects
from sync.reference.rules.diff import KindDiff
from sync.reference.rules.keys import KEY_SEP
from sync.reference.rules.normalise import canonical_records

SUPPLIERS = get_kind("suppliers")
TAX = get_kind("tax_codes")
CURRENCIES = get_kind("currencies")
FIELDS = get_kind("custom_fields")
ACCOUNTS = get_kind("account_codes")


def frame_of(kind: Kind, records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A canonical frame (the state's shape) from plain records."""
    return canonical_records(kind, list(records))


def rows(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """A canonical frame as plain data, for equality checks that ignore pandas details (an
    Arrow-backed text column read as the product reads it: None where missing)."""
    cells = {c: column_objects(frame[c]).tolist() for c in frame.columns}
    return {str(k): {c: cells[c][i] for c in frame.columns} for i, k in enumerate(frame.index)}


def suppliers(*codes: str, **values: Any) -> list[dict[str, Any]]:
    """One supplier record per code, named after it, with ``values`` on every record."""
    return [{"Code": c, "Name": f"Supplier {c}", **values} for c in codes]


def source_frame(columns: Mapping[str, list[Any]]) -> pd.DataFrame:
    """An object-dtype source frame, the shape connectors return."""
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})


def calls_for(diff: KindDiff) -> int:
    """Every create, edit and delete in a diff."""
    return len(diff.creates) + len(diff.edits) + len(diff.deletes)


def value_key(field: str, code: str) -> str:
    """The key of a custom field value row."""
    return f"{field}{KEY_SEP}{code}"


codes = st.text(alphabet="ABCDEFGH0123", min_size=1, max_size=4)
names = st.one_of(st.none(), st.text(alphabet="abcxyz é", min_size=0, max_size=6))
days = st.one_of(st.none(), st.integers(0, 120))


@st.composite
def supplier_records(draw: st.DrawFn, max_size: int = 12) -> list[dict[str, Any]]:
    """Suppliers with distinct codes and a few varying fields."""
    keys = draw(st.lists(codes, max_size=max_size, unique_by=str.casefold))
    return [{"Code": k, "Name": draw(names) or f"n{k}", "TownOrCity": draw(names),
             "PaymentDueDays": draw(days)} for k in keys]


def judged(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The values the IBAN, BIC and VAT libraries are asked about from now on, in order."""
    from sync.reference.rules import checks

    calls: list[tuple[str, str]] = []
    for name, check in (("iban", "_iban_problem"), ("bic", "_bic_problem"),
                        ("vat", "_vat_problem")):
        real = getattr(checks, check).__wrapped__  # past the per-process cache

        def spy(*args: Any, _name: str = name, _real: Any = real) -> Any:
            calls.append((_name, " ".join(str(a) for a in args)))
            return _real(*args)

        monkeypatch.setattr(checks, check, spy)
    return calls
