"""The in-memory source and sink: the switches tests and the demo rely on."""

from __future__ import annotations

import pytest

from connectors.base import Posting
from connectors.memory import MemorySink, MemorySource
from sync.foundation.errors import ConfigError, SinkError, SinkRejected, SourceError
from tests.connectors.data import COMPANY, OTHER, transaction


def test_fail_next_fails_once() -> None:
    """fail_next makes exactly the next read of that kind fail."""
    source = MemorySource("m", {"suppliers": [{"Code": "A"}]})
    source.fail_next("suppliers", "ERP offline")
    with pytest.raises(SourceError, match="ERP offline"):
        source.read("suppliers", COMPANY)
    assert list(source.read("suppliers", COMPANY).frame["Code"]) == ["A"]


def test_partial_reads_are_flagged() -> None:
    """partial(kind) reports complete=False with a reason, until switched off."""
    source = MemorySource("m", {"suppliers": [{"Code": "A"}]})
    source.partial("suppliers")
    read = source.read("suppliers", COMPANY)
    assert (read.complete, bool(read.detail)) == (False, True)
    source.partial("suppliers", False)
    assert source.read("suppliers", COMPANY).complete


def test_rows_per_company_override_shared_rows() -> None:
    """Rows set for one company win; other companies see the shared rows."""
    source = MemorySource("m", {"tax_codes": [{"Code": "S"}]})
    source.set_rows("tax_codes", [{"Code": "Z"}], company=OTHER.name)
    assert list(source.read("tax_codes", OTHER).frame["Code"]) == ["Z"]
    assert list(source.read("tax_codes", COMPANY).frame["Code"]) == ["S"]
    source.set_rows("tax_codes", [])
    assert len(source.read("tax_codes", COMPANY).frame) == 0
    assert source.reads[-1] == ("tax_codes", COMPANY.name)


def test_unknown_kind_names_are_refused() -> None:
    """set_rows checks the kind; reading an unknown kind is a config error."""
    source = MemorySource("m")
    with pytest.raises(ValueError, match="unknown kind"):
        source.set_rows("supplier", [])
    with pytest.raises(ConfigError, match="unknown kind"):
        source.read("supplier", COMPANY)


def test_reject_and_outage_switches() -> None:
    """reject() refuses an id; fail_next() fails before or after making the entry."""
    sink = MemorySink("m")
    sink.reject(transaction(1).id, "closed period")
    with pytest.raises(SinkRejected, match="closed period"):
        sink.post(transaction(1), COMPANY)
    sink.fail_next()
    with pytest.raises(SinkError):
        sink.post(transaction(2), COMPANY)
    assert sink.find(transaction(2).id) is None
    sink.fail_next(after_commit=True)
    with pytest.raises(SinkError, match="find"):
        sink.post(transaction(3), COMPANY)
    assert sink.find(transaction(3).id) == Posting(transaction(3).id, "M00000001", False)
    assert [outcome for _, outcome in sink.calls] == ["rejected", "failed", "failed"]


def test_entries_record_what_the_erp_received() -> None:
    """Each entry keeps the flat header and lines; counts are per transaction id."""
    sink = MemorySink("m", journal_prefix="T")
    tx = transaction(4, lines=3)
    assert sink.post(tx, COMPANY) == Posting(tx.id, "T00000001", True)
    sink.post(tx, COMPANY)
    entry = sink.entries[0]
    assert (entry.header["identifier"], len(entry.lines)) == ("INV-00004", 3)
    assert sink.entry_counts() == {tx.id: 1}
    assert [outcome for _, outcome in sink.calls] == ["created", "found"]
