"""`icsync fields` and docs/fields.md: generated from the kinds registry, so they cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.cli import main
from sync.console.fields import markdown, rows
from sync.entities import FIELD_NOTES, KINDS

DOC = Path(__file__).parents[2] / "docs" / "fields.md"


def test_docs_page_is_up_to_date() -> None:
    """docs/fields.md is exactly what `icsync fields --markdown` prints (regenerate it with
    that command when the registry changes)."""
    assert DOC.read_text(encoding="utf-8") == markdown()


def test_every_note_names_a_real_field() -> None:
    """Each field note of the registry belongs to a field a kind has."""
    for kind, name in FIELD_NOTES:
        assert name in KINDS[kind].field_names


def test_fields_command_says_what_is_never_sent(capsys: pytest.CaptureFixture[str]) -> None:
    """`icsync fields suppliers` lists every field with its limit, and VatNumber as validated
    only, never sent."""
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
