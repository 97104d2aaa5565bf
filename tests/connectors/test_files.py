"""The files source and sink beyond the contract: encodings, shapes, atomic drops."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from connectors.base import CompanyRef, Posting
from connectors.files import FilesSink, FilesSource, file_stem, hashed_journal
from sync.foundation.config import FilesSinkConfig, FilesSourceConfig
from sync.foundation.errors import ConfigError, SinkError, SourceError
from tests.connectors.data import COMPANY, transaction


def source(folder: Path, **kinds: dict[str, Any]) -> FilesSource:
    """A files source named erp over ``folder``."""
    return FilesSource("erp", FilesSourceConfig(type="files", directory=folder,
                                                kinds=kinds))  # type: ignore[arg-type]


def drop(folder: Path, **options: Any) -> FilesSink:
    """A files sink named erp over an existing ``folder``."""
    folder.mkdir(exist_ok=True)
    return FilesSink("erp", FilesSinkConfig(type="files", directory=folder, **options))


def test_undecodable_bytes_are_kept_for_the_row_when_quarantined(tmp_path: Path) -> None:
    """With encoding_errors "quarantine" a byte that is not UTF-8 becomes a lone surrogate in
    its cell; other rows load."""
    (tmp_path / "suppliers.csv").write_bytes(b"Code,Name\nA1,Good\nB2,Bad \xff byte\n")
    spec = {"encoding_errors": "quarantine"}
    frame = source(tmp_path, suppliers=spec).read("suppliers", COMPANY).frame
    assert list(frame["Name"]) == ["Good", "Bad \udcff byte"]


@pytest.mark.parametrize("name", ["suppliers.csv", "suppliers.json"])
def test_undecodable_bytes_name_the_line_and_the_encoding(tmp_path: Path, name: str) -> None:
    """A Windows-1252 file read as UTF-8 is a configuration error naming the file, the line
    and the encoding that reads it (never a traceback, never a mangled load)."""
    body = (b"Code,Name\r\nA1,Good\r\nB2,Caf\xe9 Ltd\r\n" if name.endswith(".csv") else
            b'[{"Code": "A1", "Name": "Caf\xe9 Ltd"}]')
    (tmp_path / name).write_bytes(body)
    with pytest.raises(ConfigError) as caught:
        source(tmp_path, suppliers={"file": name}).read("suppliers", COMPANY)
    text = str(caught.value)
    assert caught.value.key == "sources.erp.kinds.suppliers.encoding"
    assert name in text
    assert 'encoding = "cp1252"' in text
    assert ("line 3" if name.endswith(".csv") else "line 1") in text


def test_encoding_and_delimiter_options(tmp_path: Path) -> None:
    """A Latin-1, semicolon-separated export reads correctly when configured so."""
    (tmp_path / "s.txt").write_bytes("Code;Name\n0042;Café NA\n".encode("latin-1"))
    src = source(tmp_path, suppliers={"file": "s.txt", "encoding": "latin-1", "delimiter": ";"})
    assert src.read("suppliers", COMPANY).frame.to_dict("records") == [
        {"Code": "0042", "Name": "Café NA"}]


def test_header_only_is_a_real_empty_read_but_zero_bytes_is_not(tmp_path: Path) -> None:
    """A file with just a header is an empty source; a 0-byte file is a failed export."""
    (tmp_path / "suppliers.csv").write_text("Code,Name\n", encoding="utf-8")
    (tmp_path / "tax_codes.csv").write_bytes(b"")
    src = source(tmp_path, suppliers={}, tax_codes={})
    read = src.read("suppliers", COMPANY)
    assert read.complete
    assert (len(read.frame), list(read.frame.columns)) == (0, ["Code", "Name"])
    with pytest.raises(SourceError, match="tax_codes"):
        src.read("tax_codes", COMPANY)


def test_empty_cells_stay_empty_strings(tmp_path: Path) -> None:
    """An empty CSV cell is "" (not NaN), so normalisation sees exactly what was exported."""
    (tmp_path / "suppliers.csv").write_text("Code,Name,Email\nA,,\n", encoding="utf-8")
    frame = source(tmp_path, suppliers={}).read("suppliers", COMPANY).frame
    assert frame.to_dict("records") == [{"Code": "A", "Name": "", "Email": ""}]


def test_json_must_be_an_array_of_objects(tmp_path: Path) -> None:
    """A JSON file that is not a records array is a failed read that says what was expected."""
    (tmp_path / "suppliers.json").write_text('{"Code": "A"}', encoding="utf-8")
    with pytest.raises(SourceError, match="array of objects"):
        source(tmp_path, suppliers={"file": "suppliers.json"}).read("suppliers", COMPANY)


def test_json_rows_may_differ_in_keys(tmp_path: Path) -> None:
    """Keys missing from some records read as None, columns in first-seen order."""
    rows = [{"Code": "A", "Name": "x"}, {"Code": "B", "Email": "b@x.example"}]
    (tmp_path / "suppliers.json").write_text(json.dumps(rows), encoding="utf-8")
    frame = source(tmp_path, suppliers={"format": "json"}).read("suppliers", COMPANY).frame
    assert list(frame.columns) == ["Code", "Name", "Email"]
    assert frame.to_dict("records")[1] == {"Code": "B", "Name": None, "Email": "b@x.example"}


def test_missing_excel_sheet_is_a_failed_read(tmp_path: Path) -> None:
    """Asking for a sheet the workbook lacks is a SourceError, not an empty frame."""
    import pandas as pd

    pd.DataFrame({"Code": ["A"]}).to_excel(tmp_path / "s.xlsx", index=False)
    with pytest.raises(SourceError, match="Nope"):
        source(tmp_path, suppliers={"file": "s.xlsx", "sheet": "Nope"}).read("suppliers",
                                                                            COMPANY)


def test_format_and_encoding_problems_are_config_errors(tmp_path: Path) -> None:
    """An unknown extension or encoding names the key to fix."""
    (tmp_path / "s.dat").write_text("Code\nA\n", encoding="utf-8")
    (tmp_path / "suppliers.csv").write_text("Code\nA\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        source(tmp_path, suppliers={"file": "s.dat"}).read("suppliers", COMPANY)
    assert caught.value.key == "sources.erp.kinds.suppliers.format"
    with pytest.raises(ConfigError) as caught:
        source(tmp_path, suppliers={"encoding": "no-such-codec"}).read("suppliers", COMPANY)
    assert caught.value.key == "sources.erp.kinds.suppliers.encoding"


def test_json_document_carries_header_lines_and_raw(tmp_path: Path) -> None:
    """The JSON document holds the journal number, the header, every line and the raw JSON."""
    tx = transaction(1, lines=3)
    posting = drop(tmp_path / "drop").post(tx, COMPANY)
    document = json.loads((tmp_path / "drop" / f"{tx.id}.json").read_text(encoding="utf-8"))
    assert document["JournalNumber"] == posting.journal_number == hashed_journal("IC", tx.id)
    assert document["Header"]["gross_local"] == "120.0"
    assert document["Header"]["invoice_date"] == "2024-05-01"
    assert [line["description"] for line in document["Lines"]] == [
        "Chair 1 😀", "Chair 2 😀", "Chair 3 😀"]
    assert document["Transaction"] == tx.raw


def test_csv_document_has_a_row_per_line(tmp_path: Path) -> None:
    """The CSV document repeats the header fields on each line's row."""
    tx = transaction(2, lines=2)
    drop(tmp_path / "drop", format="csv", journal_prefix="AP").post(tx, COMPANY)
    text = (tmp_path / "drop" / f"{tx.id}.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["JournalNumber"], r["identifier"], r["line_number"]) for r in rows] == [
        (hashed_journal("AP", tx.id), "INV-00002", "1"), (hashed_journal("AP", tx.id),
                                                          "INV-00002", "2")]


def test_journal_is_the_same_in_any_drop_folder(tmp_path: Path) -> None:
    """A re-post after losing the folder's state gives the same journal number."""
    tx = transaction(3)
    first = drop(tmp_path / "a").post(tx, COMPANY)
    second = drop(tmp_path / "b").post(tx, COMPANY)
    assert first.journal_number == second.journal_number
    assert first.journal_number.startswith("IC")


def test_processed_documents_still_count(tmp_path: Path) -> None:
    """After the ERP import moved a document to processed/, find and post still see it."""
    folder = tmp_path / "drop"
    sink = drop(folder)
    tx = transaction(4)
    posting = sink.post(tx, COMPANY)
    (folder / "processed").mkdir()
    os.replace(folder / f"{tx.id}.json", folder / "processed" / f"{tx.id}.json")
    assert sink.find(tx.id) == Posting(tx.id, posting.journal_number, False)
    assert sink.post(tx, COMPANY) == Posting(tx.id, posting.journal_number, False)
    assert not (folder / f"{tx.id}.json").exists()


def test_unsafe_ids_get_distinct_safe_names(tmp_path: Path) -> None:
    """Ids with path characters never escape the folder and never collide."""
    names = {file_stem(i) for i in ("../../etc/passwd", "a/b", "a_b", ".hidden", "a b")}
    assert len(names) == 5
    assert all("/" not in n and not n.startswith(".") for n in names)
    assert file_stem("5d1f0a3e-0000-4000-8000-000000000001") == (
        "5d1f0a3e-0000-4000-8000-000000000001")


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    """Only finished documents are in the folder after posting (nothing half-written)."""
    sink = drop(tmp_path / "drop")
    for n in range(5):
        sink.post(transaction(n), COMPANY)
    assert sorted(p.suffix for p in (tmp_path / "drop").iterdir()) == [".json"] * 5


def test_missing_drop_folder_is_a_sink_error(tmp_path: Path) -> None:
    """A missing (unmounted?) drop folder fails loudly instead of being created."""
    sink = FilesSink("erp", FilesSinkConfig(type="files", directory=tmp_path / "gone"))
    with pytest.raises(SinkError, match="does not exist"):
        sink.post(transaction(1), COMPANY)
    assert not (tmp_path / "gone").exists()


def test_company_placeholders_pick_the_file(tmp_path: Path) -> None:
    """{company_id} in the file name selects that company's export; path tricks are refused."""
    (tmp_path / f"{COMPANY.company_id}-suppliers.csv").write_text("Code\nA\n", encoding="utf-8")
    src = source(tmp_path, suppliers={"file": "{company_id}-suppliers.csv"})
    assert list(src.read("suppliers", COMPANY).frame["Code"]) == ["A"]
    sneaky = CompanyRef("x", "../../etc")
    with pytest.raises(ConfigError, match="cannot be part of a file name"):
        src.read("suppliers", sneaky)
