"""The Source contract, run against every implementation (SQL, files in four formats, memory)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from connectors.base import Source
from sync.foundation.entities import KIND_NAMES
from sync.foundation.errors import ConfigError, SourceError
from tests.connectors.conftest import SourceFactory
from tests.connectors.data import COMPANY, EVIL, ROWS


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows in a stable order, for comparison with the dataset."""
    rows = frame.to_dict("records")
    return sorted(rows, key=lambda r: tuple(str(v) for v in r.values()))


def expected(kind: str) -> list[dict[str, Any]]:
    """The dataset's rows of ``kind`` in the same stable order."""
    return sorted(ROWS[kind], key=lambda r: tuple(str(v) for v in r.values()))


def test_implements_the_protocol(make_source: SourceFactory) -> None:
    """Every implementation is a Source and names the kinds it is configured for."""
    source = make_source(["suppliers", "currencies"]).source
    assert isinstance(source, Source)
    assert set(source.kinds()) == {"suppliers", "currencies"}


def test_reads_every_kind_completely_in_its_own_columns(make_source: SourceFactory) -> None:
    """Each kind reads back exactly the rows and column names the ERP holds."""
    source = make_source(KIND_NAMES).source
    for kind in KIND_NAMES:
        read = source.read(kind, COMPANY)
        assert read.complete
        assert list(read.frame.columns) == list(ROWS[kind][0])
        assert records(read.frame) == expected(kind), kind


def test_codes_stay_strings(make_source: SourceFactory) -> None:
    """Leading zeros and "NA" survive: codes are never coerced to numbers or missing values."""
    frame = make_source(["account_codes"]).source.read("account_codes", COMPANY).frame
    assert sorted(frame["Code"]) == ["0042", "5000", "NA"]
    assert all(isinstance(v, str) for v in frame["Code"])
    assert frame["Code"].dtype == object or str(frame["Code"].dtype) == "string[pyarrow]"


def test_unicode_round_trips(make_source: SourceFactory) -> None:
    """Emoji, accents, right-to-left text and marks come back unchanged."""
    frame = make_source(["suppliers"]).source.read("suppliers", COMPANY).frame
    names = set(frame["Name"])
    assert {"Müller GmbH 😀", "שלום \u200f Ltd", 'O\'Brien "Quotes" & Sons'} <= names


def test_custom_fields_come_one_row_per_value(make_source: SourceFactory) -> None:
    """Custom fields read as Field, Code, Name rows with Type and Mandatory per field."""
    frame = make_source(["custom_fields"]).source.read("custom_fields", COMPANY).frame
    assert list(frame.columns) == ["Field", "Code", "Name", "Type", "Mandatory"]
    assert sorted(frame.loc[frame["Field"] == "Department", "Code"]) == ["0010", "0020"]


def test_unconfigured_kind_is_a_config_error(make_source: SourceFactory) -> None:
    """Reading a kind the source has no configuration for names the key to add."""
    source = make_source(["suppliers"]).source
    with pytest.raises(ConfigError) as caught:
        source.read("tax_codes", COMPANY)
    assert caught.value.key == "sources.erp.kinds.tax_codes"


def test_failed_read_is_an_error_never_empty(make_source: SourceFactory) -> None:
    """A missing table/file or a failing read raises SourceError naming the kind."""
    case = make_source(["suppliers", "tax_codes"])
    case.break_read("suppliers")
    with pytest.raises(SourceError, match="suppliers"):
        case.source.read("suppliers", COMPANY)
    assert len(case.source.read("tax_codes", COMPANY).frame) == len(ROWS["tax_codes"])


def test_company_with_a_quote_is_bound_not_injected(make_source: SourceFactory) -> None:
    """A quote in the company works; an injection-shaped name never yields another's rows."""
    source = make_source(["suppliers"]).source
    assert len(source.read("suppliers", COMPANY).frame) == len(ROWS["suppliers"])
    try:
        frame = source.read("suppliers", EVIL).frame
    except SourceError:
        return  # files: that company has no export, which is a failed read
    assert len(frame) == 0


def test_reads_are_repeatable(make_source: SourceFactory) -> None:
    """Two reads of an unchanged source give equal frames."""
    source = make_source(["delivery_sites"]).source
    first = source.read("delivery_sites", COMPANY).frame
    second = source.read("delivery_sites", COMPANY).frame
    assert records(first) == records(second)
