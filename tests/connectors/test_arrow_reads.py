"""Arrow-native reads (pyarrow.csv, ADBC) give exactly what the row-by-row readers give."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.base import CompanyRef
from connectors.files import _arrow_csv, read_csv, read_parquet
from connectors.sql import SqlSource
from sync.foundation.config import KindSourceConfig, SqlSourceConfig, ValidationConfig
from sync.foundation.entities import get_kind
from sync.foundation.errors import ConfigError
from sync.reference.rules.normalise import KindMapping, normalise

COMPANY = CompanyRef("uk", "c-1")


def row_by_row(path: Path, spec: KindSourceConfig) -> pd.DataFrame:
    """The pandas reader the files source used before (and still falls back to)."""
    return pd.read_csv(path, sep=spec.delimiter, dtype=object, keep_default_na=False,
                       encoding=spec.encoding, encoding_errors="surrogateescape")


@pytest.mark.parametrize(("text", "encoding", "delimiter"), [
    ("\ufeffCode,Name\n0042,NA\n7,\n", "utf-8", ","),
    ('Code;Name\n"A;1";"two\nlines"\n B ;x\n', "utf-8", ";"),
    ("Code,Name\nA,Müller\n", "latin-1", ","),
    ("\ufeffCode,Name\nA,Zoë\n", "utf-8-sig", ","),
    ('Code\tName\nA\t"say ""hi"""\n', "utf-8", "\t"),
])
def test_csv_through_arrow_equals_the_row_by_row_reader(tmp_path: Path, text: str,
                                                        encoding: str, delimiter: str) -> None:
    """BOMs, delimiters, quotes, embedded newlines, "NA", "0042" and encodings read the same."""
    path = tmp_path / "suppliers.csv"
    path.write_bytes(text.encode("utf-8" if encoding == "utf-8-sig" else encoding))
    spec = KindSourceConfig(encoding=encoding, delimiter=delimiter)
    fast = _arrow_csv(path, spec)
    assert fast is not None
    assert isinstance(fast["Code"].dtype, pd.ArrowDtype)
    slow = row_by_row(path, spec)
    assert list(fast.columns) == list(slow.columns)
    assert fast.astype(object).equals(slow)


def test_a_bad_byte_takes_the_row_by_row_reader(tmp_path: Path) -> None:
    """Bytes that do not decode leave pyarrow out: the row is kept with lone surrogates, so
    normalisation rejects that row alone (bad_encoding) and the rest loads."""
    path = tmp_path / "suppliers.csv"
    path.write_bytes(b"Code,Name\nA,ok\nB,bad\xff\n")
    spec = KindSourceConfig()
    assert _arrow_csv(path, spec) is None
    frame = read_csv(path, spec)
    assert frame["Name"].tolist() == ["ok", "bad\udcff"]
    norm = normalise(get_kind("suppliers"), frame)
    assert [r.reason for r in norm.rejected] == ["bad_encoding"]
    assert list(norm.frame.index) == ["A"]


def test_repeated_header_names_take_the_row_by_row_reader(tmp_path: Path) -> None:
    """A header naming a column twice keeps pandas' renaming (Code, Code.1)."""
    path = tmp_path / "suppliers.csv"
    path.write_text("Code,Code\n1,2\n")
    assert _arrow_csv(path, KindSourceConfig()) is None
    assert list(read_csv(path, KindSourceConfig()).columns) == ["Code", "Code.1"]


def make_erp(path: Path, rows: Sequence[tuple[object, ...]]) -> None:
    """A suppliers table with the rows given."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE s (Code TEXT, Name TEXT, PaymentDueDays INTEGER, "
                   "AnalysisDefaults TEXT)")
        db.executemany("INSERT INTO s VALUES (?, ?, ?, ?)", rows)


def sources(erp: Path, table: str = "s") -> tuple[SqlSource, SqlSource]:
    """The same table read through ADBC and through SQLAlchemy (on SQLite only table reads go
    through ADBC: its driver cannot cancel a runaway query)."""
    kinds = {"suppliers": {"table": table}}
    return (SqlSource("erp", SqlSourceConfig(type="sql", url=f"sqlite:///{erp}", kinds=kinds)),
            SqlSource("erp", SqlSourceConfig(type="sql", url=f"sqlite:///{erp}", kinds=kinds,
                                             arrow=False)))


def test_sqlite_through_adbc_plans_the_same(tmp_path: Path) -> None:
    """ADBC's Arrow frame normalises to the very frame (values, digests) of the row-by-row
    one."""
    erp = tmp_path / "erp.db"
    json_text = '[{"FieldCode": "AccountCode", "Value": "5000"}]'
    make_erp(erp, [(f"S{i:03d}", f" Name {i} " if i % 3 else "Zoë", i % 60 or None,
                    json_text if i % 2 else None) for i in range(300)] + [("uk", "", 5, "")])
    fast, slow = sources(erp)
    a, b = fast.read("suppliers", COMPANY).frame, slow.read("suppliers", COMPANY).frame
    assert isinstance(a["Code"].dtype, pd.ArrowDtype)
    assert b["Code"].dtype == object
    assert len(a) == len(b) == 301
    kind = get_kind("suppliers")
    na, nb = (normalise(kind, f, KindMapping(), ValidationConfig()) for f in (a, b))
    pd.testing.assert_frame_equal(na.frame, nb.frame)
    assert na.rejected == nb.rejected
    assert na.warnings == nb.warnings


def test_a_sqlite_query_is_read_through_adbc_in_a_child_and_plans_the_same(
        tmp_path: Path) -> None:
    """A SQLite query (which could run forever) is read through ADBC in a child process, with
    :company bound; it normalises to the very frame the SQLAlchemy read gives."""
    erp = tmp_path / "erp.db"
    json_text = '[{"FieldCode": "AccountCode", "Value": "5000"}]'
    make_erp(erp, [(f"S{i:03d}", f" Name {i} " if i % 3 else "Zoë", i % 60 or None,
                    json_text if i % 2 else None) for i in range(300)]
             + [("uk", "B", 2, None), ("X", "C", 3, None)])
    kinds = {"suppliers": {"query": "SELECT * FROM s WHERE Code LIKE 'S%' OR Code = :company"}}
    fast, slow = (SqlSource("erp", SqlSourceConfig(type="sql", url=f"sqlite:///{erp}",
                                                   kinds=kinds, arrow=arrow))
                  for arrow in (True, False))
    a, b = fast.read("suppliers", COMPANY).frame, slow.read("suppliers", COMPANY).frame
    assert isinstance(a["Code"].dtype, pd.ArrowDtype)
    assert b["Code"].dtype == object
    assert sorted(a["Code"])[-1] == "uk"
    assert "X" not in set(a["Code"])
    kind = get_kind("suppliers")
    na, nb = (normalise(kind, f, KindMapping(), ValidationConfig()) for f in (a, b))
    pd.testing.assert_frame_equal(na.frame, nb.frame)
    assert na.rejected == nb.rejected


def test_a_column_of_mixed_types_plans_the_same(tmp_path: Path) -> None:
    """SQLite lets a column hold numbers in some rows and text in others: ADBC either reads it
    as text (the mix is in its first batch) or refuses it (the source then reads through
    SQLAlchemy); either way the normalised frame and the rejected rows are the same."""
    erp = tmp_path / "erp.db"
    rows: list[tuple[object, ...]] = [(f"A{i:04d}", "x", 30, None) for i in range(3)]
    rows += [("B", "y", "thirty", None)]
    rows += [(f"C{i:04d}", 42, 30, None) for i in range(2000)] + [("D", "z", 2.5, None)]
    make_erp(erp, rows)
    fast, slow = sources(erp)
    a, b = fast.read("suppliers", COMPANY).frame, slow.read("suppliers", COMPANY).frame
    kind = get_kind("suppliers")
    na, nb = (normalise(kind, f, KindMapping(), ValidationConfig()) for f in (a, b))
    pd.testing.assert_frame_equal(na.frame, nb.frame)
    # The same rows are rejected for the same reasons with the same messages; the digest of
    # a row as read differs only where the mixed column's number came back as its text.
    assert [(r.key, r.field, r.reason, r.message) for r in na.rejected] == \
        [(r.key, r.field, r.reason, r.message) for r in nb.rejected]
    assert {r.key for r in na.rejected} == {"B", "D"}


def test_parquet_through_arrow_plans_the_same(tmp_path: Path) -> None:
    """A Parquet export of text, integers (with nulls) and floats stays Arrow-backed and
    normalises to the frame its Python objects give."""
    path = tmp_path / "suppliers.parquet"
    pq.write_table(pa.table({
        "Code": ["S1", "S2", " S3 ", None], "Name": ["Zoë", "", "x", "y"],
        "PaymentDueDays": pa.array([30, None, 14, 7], pa.int64()),
        "Telephone": pa.array([1.0, 2.5, None, 4.0], pa.float64()),
    }), path)
    fast = read_parquet(path, KindSourceConfig())
    assert isinstance(fast["Code"].dtype, pd.ArrowDtype)
    slow = pd.read_parquet(path, engine="pyarrow")
    slow = slow.astype(object).where(slow.notna(), None)
    kind = get_kind("suppliers")
    na, nb = (normalise(kind, f, KindMapping(), ValidationConfig()) for f in (fast, slow))
    pd.testing.assert_frame_equal(na.frame, nb.frame)
    assert na.rejected == nb.rejected


@pytest.mark.parametrize("kind", [{"table": "s"}, {"query": "SELECT * FROM s"}])
def test_text_that_is_not_utf8_leaves_arrow_and_names_the_column(
        tmp_path: Path, kind: dict[str, str]) -> None:
    """ADBC hands over SQLite's bytes as they are; invalid UTF-8 is caught before it is used
    and the row-by-row read names the column and the encoding to set."""
    erp = tmp_path / "erp.db"
    make_erp(erp, [("S1", "ok", 1, None)])
    with closing(sqlite3.connect(erp)) as db, db:
        db.execute("INSERT INTO s VALUES ('S2', CAST(? AS TEXT), 2, NULL)",
                   ("Café".encode("cp1252"),))
    source = SqlSource("erp", SqlSourceConfig(type="sql", url=f"sqlite:///{erp}",
                                              kinds={"suppliers": kind}))
    with pytest.raises(ConfigError, match=r"column 'Name'.*cp1252"):
        source.read("suppliers", COMPANY)


@pytest.mark.parametrize("spec", [{"table": "suppliers"},
                                  {"query": "SELECT Code, Name FROM suppliers ORDER BY Code"}])
def test_a_wal_erp_written_in_this_process_reads_fresh_and_stays_sound(
        tmp_path: Path, spec: dict[str, str]) -> None:
    """An ERP file in WAL mode that this process also holds open (Python's sqlite3, a writer):
    each read, table or query, sees the last commit, and sqlite3 keeps working afterwards.
    (A second SQLite library in this process, an in-process ADBC read, broke both.)"""
    path = tmp_path / "erp.db"
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("CREATE TABLE suppliers (Code TEXT PRIMARY KEY, Name TEXT)")
        writer.execute("INSERT INTO suppliers VALUES ('S1', 'first')")
        source = SqlSource("erp", SqlSourceConfig(type="sql", url=f"sqlite:///{path}",
                                                  kinds={"suppliers": spec}))
        try:
            for name in ("first", "second", "third"):
                writer.execute("UPDATE suppliers SET Name = ? WHERE Code = 'S1'", (name,))
                frame = source.read("suppliers", COMPANY).frame
                assert isinstance(frame["Name"].dtype, pd.ArrowDtype)
                assert frame["Name"].tolist() == [name]
                with closing(sqlite3.connect(path)) as fresh:
                    assert fresh.execute("SELECT Name FROM suppliers").fetchall() == [(name,)]
        finally:
            source.close()
    finally:
        writer.close()
