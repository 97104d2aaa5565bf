"""Fixtures: the same reference dataset in every Source, and every TransactionSink variant."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import TypeAdapter
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from connectors.base import Source, TransactionSink
from connectors.factory import build_sink, build_source
from connectors.files import file_stem
from connectors.memory import MemorySink, MemorySource
from sync.foundation.config import SinkConfig, SourceConfig
from sync.foundation.entities import KIND_NAMES
from tests.connectors.data import COMPANY, DECOY, OTHER, ROWS

PG_ENV = "ICSYNC_TEST_PG_URL"


@pytest.fixture
def pg_test_url(request: pytest.FixtureRequest) -> str:
    """The shared PostgreSQL server (tests use unique table names and drop them), else $ENV."""
    try:
        return str(request.getfixturevalue("pg_url"))
    except pytest.FixtureLookupError:
        pass
    if os.environ.get(PG_ENV):
        return os.environ[PG_ENV]
    pytest.skip(f"no PostgreSQL: no pg_url fixture and ${PG_ENV} is unset")


def run_sql(url: str, *statements: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Run statements in one transaction on a private engine; the last one's rows."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = None
            for stmt in statements:
                result = conn.execute(text(stmt), params or {})
            return list(result.all()) if result is not None and result.returns_rows else []
    finally:
        engine.dispose()


# ---------------------------------------------------------------- sources


@dataclass
class SourceCase:
    """A source holding :data:`ROWS` for COMPANY, and a way to make a kind's next read fail."""

    source: Source
    break_read: Callable[[str], None]
    cleanup: Callable[[], object] = lambda: None


def _columns(kind: str) -> list[str]:
    return list(dict.fromkeys(c for row in ROWS[kind] for c in row))


def _sql_case(url: str, kinds: Iterable[str], prefix: str) -> SourceCase:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        for kind in KIND_NAMES:
            cols = _columns(kind)
            quoted = ", ".join(f'"{c}"' for c in cols)
            conn.execute(text(f"CREATE TABLE {prefix}{kind} (company TEXT, "
                              + ", ".join(f'"{c}" TEXT' for c in cols) + ")"))
            insert = text(f"INSERT INTO {prefix}{kind} (company, {quoted}) VALUES (:company, "
                          + ", ".join(f":p{i}" for i in range(len(cols))) + ")")
            rows = [(COMPANY.name, r) for r in ROWS[kind]] + [(OTHER.name, DECOY)]
            for company, row in rows:
                conn.execute(insert, {"company": company,
                                      **{f"p{i}": row.get(c) for i, c in enumerate(cols)}})
    engine.dispose()
    config = {"type": "sql", "url": url, "timeout_seconds": 10, "kinds": {
        k: {"query": "SELECT " + ", ".join(f'"{c}"' for c in _columns(k))
            + f" FROM {prefix}{k} WHERE company = :company"}
        for k in kinds}}
    source = build_source("erp", TypeAdapter(SourceConfig).validate_python(config))
    return SourceCase(source, lambda kind: run_sql(url, f"DROP TABLE {prefix}{kind}"),
                      lambda: run_sql(url, *(f"DROP TABLE IF EXISTS {prefix}{k}"
                                             for k in KIND_NAMES)))


def _write_file(fmt: str, path: Path, kind: str) -> None:
    rows = ROWS[kind]
    frame = pd.DataFrame(rows, columns=_columns(kind), dtype=object)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "csv-semicolon":
        frame.to_csv(path, index=False, sep=";", encoding="utf-8-sig")
    elif fmt == "excel":
        frame.to_excel(path, index=False, sheet_name="Export")
    elif fmt == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    else:
        frame.to_parquet(path, index=False)


_FILE_OPTIONS: dict[str, dict[str, Any]] = {
    "csv": {}, "csv-semicolon": {"delimiter": ";", "encoding": "utf-8-sig", "format": "csv"},
    "excel": {"sheet": "Export"}, "json": {}, "parquet": {},
}
_EXT = {"csv": "csv", "csv-semicolon": "txt", "excel": "xlsx", "json": "json",
        "parquet": "parquet"}


def _files_case(tmp_path: Path, fmt: str, kinds: Iterable[str]) -> SourceCase:
    folder = tmp_path / "exports" / COMPANY.name
    folder.mkdir(parents=True)
    for kind in KIND_NAMES:
        _write_file(fmt, folder / f"{kind}.{_EXT[fmt]}", kind)
    config = {"type": "files", "directory": str(tmp_path / "exports"), "kinds": {
        k: {"file": f"{{company}}/{k}.{_EXT[fmt]}", **_FILE_OPTIONS[fmt]} for k in kinds}}
    source = build_source("erp", TypeAdapter(SourceConfig).validate_python(config))

    def break_read(kind: str) -> None:
        path = folder / f"{kind}.{_EXT[fmt]}"
        if fmt in ("excel", "json"):
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
        else:
            path.unlink()

    return SourceCase(source, break_read)


def _memory_case(kinds: Iterable[str]) -> SourceCase:
    source = MemorySource("erp")
    for kind in kinds:
        source.set_rows(kind, ROWS[kind], company=COMPANY.name)
        source.set_rows(kind, [DECOY], company=OTHER.name)
    return SourceCase(source, source.fail_next)


SOURCE_KINDS = ["sqlite", "postgresql", "csv", "csv-semicolon", "excel", "json", "parquet",
                "memory"]
SourceFactory = Callable[[Iterable[str]], SourceCase]


@pytest.fixture(params=SOURCE_KINDS)
def make_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SourceFactory]:
    """Builds the dataset in one kind of source, configured for the kinds asked for."""
    variant: str = request.param
    built: list[SourceCase] = []

    def make(kinds: Iterable[str] = KIND_NAMES) -> SourceCase:
        if variant == "sqlite":
            case = _sql_case(f"sqlite:///{tmp_path / uuid.uuid4().hex[:8]}.db", kinds, "erp_")
        elif variant == "postgresql":
            url = request.getfixturevalue("pg_test_url")
            case = _sql_case(url, kinds, f"erp_{uuid.uuid4().hex[:8]}_")
        elif variant == "memory":
            case = _memory_case(kinds)
        else:
            case = _files_case(tmp_path / uuid.uuid4().hex[:6], variant, kinds)
        built.append(case)
        return case

    yield make
    for case in built:
        case.source.close()
        case.cleanup()


# ---------------------------------------------------------------- sinks


@dataclass
class SinkCase:
    """A sink, how to count its ERP entries per id, and its config (None: in-process only)."""

    sink: TransactionSink
    count: Callable[[str], int]
    config: dict[str, Any] | None
    variant: str
    others: list[TransactionSink] = field(default_factory=list)

    def build_again(self) -> TransactionSink:
        """A second, independent sink over the same ERP (what another process would build)."""
        if self.config is None:
            return self.sink
        sink = build_sink("erp", TypeAdapter(SinkConfig).validate_python(self.config))
        self.others.append(sink)
        return sink

    def close(self) -> None:
        """Close the sink and every one built again."""
        for sink in (self.sink, *self.others):
            sink.close()


def _sql_sink_case(url: str, variant: str, table: str, **options: Any) -> SinkCase:
    config = {"type": "sql", "url": url, "header_table": table, "lines_table": f"{table}_lines",
              "required_fields": ["supplier_code"], "timeout_seconds": 20, **options}

    def count(tx_id: str) -> int:
        rows = run_sql(url, f"SELECT count(*) FROM {table} WHERE transaction_id = :i",
                       params={"i": tx_id})
        return int(rows[0][0])

    sink = build_sink("erp", TypeAdapter(SinkConfig).validate_python(config))
    return SinkCase(sink, count, config, variant)


def _files_sink_case(folder: Path, fmt: str) -> SinkCase:
    folder.mkdir(parents=True)
    config = {"type": "files", "directory": str(folder), "format": fmt,
              "required_fields": ["supplier_code"]}

    def count(tx_id: str) -> int:
        name = f"{file_stem(tx_id)}.{fmt}"
        return sum(1 for p in (folder / name, folder / "processed" / name) if p.is_file())

    sink = build_sink("erp", TypeAdapter(SinkConfig).validate_python(config))
    return SinkCase(sink, count, config, f"files-{fmt}")


SINK_KINDS = ["sqlite-unique", "sqlite-plain", "sqlite-unique-nolock", "postgresql-unique",
              "postgresql-plain", "files-json", "files-csv", "memory"]


@pytest.fixture(params=SINK_KINDS)
def sink_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SinkCase]:
    """One TransactionSink implementation, empty, rejecting transactions without a supplier."""
    variant: str = request.param
    table = f"tx_{uuid.uuid4().hex[:8]}"
    options = {"unique_index": not variant.endswith("plain"),
               "serialise": not variant.endswith("nolock")}
    if variant.startswith("sqlite"):
        case = _sql_sink_case(f"sqlite:///{tmp_path / 'erp.db'}", variant, table, **options)
    elif variant.startswith("postgresql"):
        case = _sql_sink_case(request.getfixturevalue("pg_test_url"), variant, table, **options)
    elif variant.startswith("files"):
        case = _files_sink_case(tmp_path / "drop", variant.removeprefix("files-"))
    else:
        memory = MemorySink("erp", required_fields=["supplier_code"])
        case = SinkCase(memory, lambda tx_id: memory.entry_counts()[tx_id], None, variant)
    yield case
    case.close()
    if variant.startswith("postgresql"):
        run_sql(request.getfixturevalue("pg_test_url"),
                f"DROP TABLE IF EXISTS {table}", f"DROP TABLE IF EXISTS {table}_lines")
    shutil.rmtree(tmp_path / "drop", ignore_errors=True)
