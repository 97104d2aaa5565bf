"""`icsync fields` and docs/fields.md: generated from the kinds registry, so they cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.cli import main
from sync.console.fields import markdown, rows
from sync.foundation.entities import FIELD_NOTES, KINDS

DOC = Path(__file__).parents[2] / "docs" / "fields.md"


def test_docs_page_is_up_to_date() -> None:
    """docs/fields.md is exactly what `icsync fields --markdown` prints (regenerate it with
    that command when the registry changes)."""
    assert DOC.read_text(encoding="utf-8") == markdown()


def test_every_note_names_a_real_field() -> None:
    """Each field note of the registry belongs to a field a kind has."""
    for kind, name in FIELD_NOTES:
        assert name in KINDS[kind].field_names


def test_fields_command_says_what_is_never_sent(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`icsync fields suppliers` lists every field with its limit, and VatNumber as validated
    only, never sent."""
    monkeypatch.setenv("COLUMNS", "200")  # whole cells, whatever width the runner reports
    assert main(["fields", "suppliers"]) == 0
    out = capsys.readouterr().out
    for field in KINDS["suppliers"].field_names:
        assert field in out
    assert "validated only" in out
    vat = next(row for row in rows(KINDS["suppliers"]) if row[0] == "VatNumber")
    assert vat[4] == "validated only"
    assert "no VAT field" in vat[5]


def test_fields_of_an_unknown_kind_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown kind is a usage error naming the known ones."""
    assert main(["fields", "vendors"]) == 2
    assert "suppliers" in capsys.readouterr().err


SINK_KEYS = ("create_tables =", "header_table =", "lines_table =", "header_columns =",
             "line_columns =", "journal_digits =", "required_supplier_table =",
             "required_supplier_column =", "supplier_match =", "required_fields =")


def test_example_sink_mapping_is_valid() -> None:
    """The ERP-table sink mapping documented (commented out) in config/example.toml validates,
    and its required fields are transaction fields."""
    import tomllib

    from connectors.records import validate_required_fields
    from sync.foundation.config import SqlSinkConfig, parse_settings

    text = (DOC.parents[1] / "config" / "example.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    documented = [line.strip()[2:] for line in text.splitlines()
                  if line.strip().startswith("# ") and line.strip()[2:].startswith(SINK_KEYS)]
    assert len(documented) == len(SINK_KEYS)
    for line in documented:
        data["sinks"]["ledger"].update(tomllib.loads(line))
    sink = parse_settings(data).sinks["ledger"]
    assert isinstance(sink, SqlSinkConfig)
    assert sink.line_columns["header_id"] == sink.header_columns["id"]
    validate_required_fields("ledger", sink.required_fields)
