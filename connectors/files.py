"""Exported files as a reference-data source, and a drop folder as the transaction sink.

Source: one file per kind in ``directory`` (``kinds.<kind>.file``, default ``<kind>.csv``, or the
format's own extension when ``format`` is set); the format comes from ``format`` or the file's
extension. ``{company}`` and ``{company_id}`` in ``file`` are replaced by the company's name and
id, so one directory can hold several companies' exports. Values are read as written, never
coerced: CSV cells are text (``"0042"`` and ``"NA"`` stay as they are, an empty cell is ``""``).
A CSV or JSON file with bytes that do not decode in ``encoding`` is refused before it is parsed
(ConfigError, exit 2) naming the file, the line and the encoding that would read it (a Sage 50
export is Windows-1252: ``encoding = "cp1252"``); with ``encoding_errors = "quarantine"`` such
bytes are kept as lone surrogates instead, so normalisation rejects THOSE rows as
``bad_encoding`` while the rest of the file loads. A missing, empty (not
even a header) or unreadable file is a failed read (SourceError), never an empty one.

Sink: one document per transaction, written atomically (a hidden temp file in the same folder,
fsync, a hard link that fails if the name exists, fsync of the folder), so an ERP import never
sees half a file and two writers cannot both create it. The journal number is ``journal_prefix``
plus a short hash of the iCompleat id, so a re-post after a crash gives the same number. ``find``
also looks in ``processed_dir``, where the ERP import moves files it has taken. On a filesystem
without hard links the sink falls back to a rename after an existence check (a narrow race
between two concurrent writers of the same id remains there; the ledger's lease prevents it).
Documents are 0600 files whatever the umask (they carry suppliers and amounts).

CSV formula injection: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return (a title such as ``=cmd|' /C calc'!A0``) would be run as a formula by a
spreadsheet that opens the drop file. As OWASP recommends, such a cell is written with a
leading ``'`` (``'=cmd|' /C calc'!A0``), which spreadsheets show as text. Numbers icsync writes
(amounts, quantities) are not text cells and stay as they are, so a credit note's ``-12.50``
is untouched. ``neutralise_formulas = false`` in the sink's table writes every cell raw, for an
ERP import that needs the exact text and never goes through a spreadsheet.
"""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import io
import json
import os
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.base import CompanyRef, Posting, SourceRead
from connectors.decoding import bad_bytes, decode_hint
from connectors.icompleat.models import Transaction
from connectors.records import (
    check_required,
    frame_from_records,
    header_record,
    json_default,
    kind_config,
    line_records,
    to_json,
    validate_required_fields,
)
from sync.foundation.config import FilesSinkConfig, FilesSourceConfig, KindSourceConfig
from sync.foundation.errors import ConfigError, SinkError, SourceError

EXTENSIONS = {"csv": "csv", "excel": "xlsx", "json": "json", "parquet": "parquet"}
FORMAT_BY_SUFFIX = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "excel",
                    ".xlsm": "excel", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class FilesSource:
    """A directory of exports, one file per kind (CSV, Excel, JSON records, Parquet)."""

    def __init__(self, name: str, config: FilesSourceConfig) -> None:
        self.name = name
        self._config = config

    def kinds(self) -> tuple[str, ...]:
        """The kinds with a ``[sources.<name>.kinds.<kind>]`` table."""
        return tuple(self._config.kinds)

    def read(self, kind: str, company: CompanyRef) -> SourceRead:
        """Every row of the kind's file; SourceError when the file is missing or unreadable."""
        spec = kind_config(self.name, self._config.kinds, kind)
        fmt = file_format(self.name, kind, spec)
        path = self._config.directory / expand(spec.file or f"{kind}.{EXTENSIONS[fmt]}", company)
        if not path.is_file():
            raise self._failure(kind, company, path, "the file does not exist")
        try:
            if fmt in ("csv", "json") and spec.encoding_errors == "strict":
                self._check_decodes(kind, path, spec)
            frame = READERS[fmt](path, spec)
        except ConfigError:
            raise
        except LookupError as exc:
            raise ConfigError(f"unknown encoding {spec.encoding!r}",
                              key=f"sources.{self.name}.kinds.{kind}.encoding") from exc
        except Exception as exc:  # any reader failure is a failed read, never an empty one
            raise self._failure(kind, company, path, f"{type(exc).__name__}: {exc}") from exc
        return SourceRead(frame, complete=True, detail=str(path))

    def _check_decodes(self, kind: str, path: Path, spec: KindSourceConfig) -> None:
        """ConfigError naming the line and the encoding to set when the file does not decode."""
        found = bad_bytes(path.read_bytes(), spec.encoding)
        if found is None:
            return
        key = f"sources.{self.name}.kinds.{kind}"
        raise ConfigError(
            f"{path}: {found.describe(spec.encoding)}; {decode_hint(found.suggestion)} in "
            f"[{key}] (or encoding_errors = \"quarantine\" to set only those rows aside as "
            f"bad_encoding)", key=f"{key}.encoding")

    def _failure(self, kind: str, company: CompanyRef, path: Path, why: str) -> SourceError:
        return SourceError(
            f"source {self.name!r}: cannot read {kind} for company {company.name!r} from {path}: "
            f"{why[:300]}. Check sources.{self.name}.directory and "
            f"sources.{self.name}.kinds.{kind} (file, format, encoding, delimiter)")

    def close(self) -> None:
        """Nothing to release: every read opens and closes its file."""


def file_format(source: str, kind: str, spec: KindSourceConfig) -> str:
    """The configured format, else the one the file's extension names (default CSV)."""
    if spec.format is not None:
        return spec.format
    if spec.file is None:
        return "csv"
    suffix = Path(spec.file).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        raise ConfigError(f"cannot tell the format of {spec.file!r} from its extension; set "
                          f"format to csv, excel, json or parquet",
                          key=f"sources.{source}.kinds.{kind}.format")
    return FORMAT_BY_SUFFIX[suffix]


def expand(template: str, company: CompanyRef) -> str:
    """``template`` with ``{company}`` / ``{company_id}`` replaced; no path tricks allowed."""
    for placeholder, value in (("{company_id}", company.company_id), ("{company}", company.name)):
        if placeholder not in template:
            continue
        if value in ("", ".", "..") or any(c in value for c in "/\\\0"):
            raise ConfigError(f"company {company.name!r}: {value!r} cannot be part of a file "
                              f"name; remove {placeholder} from the file setting", key="companies")
        template = template.replace(placeholder, value)
    return template


def _arrow_csv(path: Path, spec: KindSourceConfig) -> pd.DataFrame | None:
    """The CSV read by pyarrow into Arrow-backed text columns (several times faster than the
    row-by-row parser), or None when only that parser gives the documented result: a
    delimiter longer than one character, a header that repeats a name, bytes that do not
    decode in the configured encoding (kept there as lone surrogates, so normalisation
    rejects those rows), or any other problem, whose error that parser then reports."""
    if len(spec.delimiter) != 1:
        return None
    try:
        codec = codecs.lookup(spec.encoding).name
    except LookupError:
        return None  # the row-by-row reader raises it, which names the key
    encoding = "utf8" if codec == "utf-8" else codec
    try:
        with path.open(encoding=spec.encoding, newline="") as handle:
            header = next(csv.reader(handle, delimiter=spec.delimiter), None)
        if not header or len(set(header)) != len(header):
            return None
        names = [header[0].removeprefix("\ufeff"), *header[1:]]
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=spec.delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (OSError, UnicodeError, ValueError, pa.ArrowException):
        return None
    if table.column_names != names:
        return None
    frame: pd.DataFrame = table.to_pandas(types_mapper=pd.ArrowDtype)
    return frame


def read_csv(path: Path, spec: KindSourceConfig) -> pd.DataFrame:
    """Every cell as text, "" for an empty one; undecodable bytes as lone surrogates."""
    frame = _arrow_csv(path, spec)
    if frame is not None:
        return frame
    return pd.read_csv(path, sep=spec.delimiter, dtype=object, keep_default_na=False,
                       encoding=spec.encoding, encoding_errors="surrogateescape")


def read_excel(path: Path, spec: KindSourceConfig) -> pd.DataFrame:
    """The configured sheet (default the first); cells as openpyxl gives them, "" when empty."""
    sheet = spec.sheet if spec.sheet is not None else 0
    return pd.read_excel(path, sheet_name=sheet, dtype=object, keep_default_na=False,
                         engine="openpyxl")


def read_json(path: Path, spec: KindSourceConfig) -> pd.DataFrame:
    """A JSON array of objects (records); values keep their JSON types."""
    data = json.loads(path.read_bytes().decode(spec.encoding, errors="surrogateescape"))
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError("expected a JSON array of objects (one object per row)")
    return frame_from_records(data)


_ARROW_NATIVE = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer,
                 pa.types.is_floating, pa.types.is_boolean)


def read_parquet(path: Path, spec: KindSourceConfig) -> pd.DataFrame:
    """Text, integer, floating-point and boolean columns as they are stored (Arrow-backed);
    any other column type makes every column Python objects, None where Parquet has a null."""
    table = pq.read_table(path)
    if table.num_columns and all(any(test(f.type) for test in _ARROW_NATIVE)
                                 for f in table.schema):
        native: pd.DataFrame = table.to_pandas(types_mapper=pd.ArrowDtype)
        return native
    frame = pd.read_parquet(path, engine="pyarrow")
    return frame.astype(object).where(frame.notna(), None)


READERS: dict[str, Callable[[Path, KindSourceConfig], pd.DataFrame]] = {
    "csv": read_csv, "excel": read_excel, "json": read_json, "parquet": read_parquet,
}


def hashed_journal(prefix: str, transaction_id: str) -> str:
    """``prefix`` plus the first 10 hex digits of the id's SHA-256: the same on every post."""
    return prefix + hashlib.sha256(transaction_id.encode("utf-8")).hexdigest()[:10].upper()


def file_stem(transaction_id: str) -> str:
    """A safe file name for an id: the id itself when safe, else a cleaned id plus a hash."""
    if _SAFE_NAME.fullmatch(transaction_id):
        return transaction_id
    cleaned = _UNSAFE.sub("_", transaction_id).strip("._-")[:60] or "tx"
    return f"{cleaned}-{hashlib.sha256(transaction_id.encode('utf-8')).hexdigest()[:16]}"


class FilesSink:
    """A drop folder: one JSON (or CSV) document per transaction, written atomically."""

    def __init__(self, name: str, config: FilesSinkConfig) -> None:
        validate_required_fields(name, config.required_fields)
        self.name = name
        self._config = config
        self._dir = config.directory
        self._processed = self._dir / config.processed_dir if config.processed_dir else None

    def find(self, transaction_id: str) -> Posting | None:
        """The document for ``transaction_id`` in the drop folder or the processed folder."""
        name = f"{file_stem(transaction_id)}.{self._config.format}"
        for folder in (self._dir, self._processed):
            if folder is not None and (folder / name).is_file():
                return Posting(transaction_id, self._journal_in(folder / name, transaction_id),
                               created=False)
        return None

    def post(self, transaction: Transaction, company: CompanyRef) -> Posting:
        """Write the document unless one exists; created only by the writer whose link won."""
        check_required(transaction, self._config.required_fields, self.name)
        found = self.find(transaction.id)
        if found is not None:
            return found
        if not self._dir.is_dir():
            raise SinkError(f"sink {self.name!r}: the drop folder {self._dir} does not exist; "
                            f"create it or fix sinks.{self.name}.directory")
        journal = hashed_journal(self._config.journal_prefix, transaction.id)
        body = render(self._config.format, transaction, company, journal,
                      neutralise=self._config.neutralise_formulas)
        target = self._dir / f"{file_stem(transaction.id)}.{self._config.format}"
        if not self._publish(target, body, transaction.id):
            return self.find(transaction.id) or Posting(transaction.id, journal, False)
        return self._unless_processed(target, transaction.id, journal)

    def _unless_processed(self, target: Path, transaction_id: str, journal: str) -> Posting:
        """Undo our document if the ERP had already taken one for this id (a racing import)."""
        if self._processed is not None and (self._processed / target.name).is_file():
            target.unlink(missing_ok=True)
            return Posting(transaction_id, self._journal_in(self._processed / target.name,
                                                            transaction_id), False)
        return Posting(transaction_id, journal, True)

    def _publish(self, target: Path, body: bytes, transaction_id: str) -> bool:
        """Atomically create ``target`` with ``body``; False when it already exists."""
        temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            write_synced(temp, body)
            try:
                return link_new(temp, target)
            finally:
                temp.unlink(missing_ok=True)
                fsync_dir(target.parent)
        except OSError as exc:
            raise SinkError(f"sink {self.name!r}: cannot write {target} for transaction "
                            f"{transaction_id}: {exc.strerror or exc}; check the folder is "
                            f"writable and has space") from exc

    def _journal_in(self, path: Path, transaction_id: str) -> str:
        """The journal number a document carries (the hashed one if it cannot be read)."""
        try:
            text = path.read_text(encoding="utf-8")
            if self._config.format == "json":
                return str(json.loads(text)["JournalNumber"])
            return str(next(csv.DictReader(io.StringIO(text)))["JournalNumber"])
        except (OSError, ValueError, KeyError, StopIteration):
            return hashed_journal(self._config.journal_prefix, transaction_id)

    def close(self) -> None:
        """Nothing to release."""


def write_synced(path: Path, body: bytes) -> None:
    """Create ``path`` (exclusively) with ``body`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask cannot widen it, and a link keeps the mode
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)


def link_new(temp: Path, target: Path) -> bool:
    """Give ``temp``'s content the name ``target`` unless it exists (True when it did not)."""
    try:
        os.link(temp, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    if target.exists():  # no hard links here: rename after a check (see the module docstring)
        return False
    os.replace(temp, target)
    return True


def fsync_dir(folder: Path) -> None:
    """Make a new directory entry durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def render(fmt: str, tx: Transaction, company: CompanyRef, journal: str, *,
           neutralise: bool = True) -> bytes:
    """The document for ``tx``: JSON (header, lines, raw transaction) or CSV (a row per line,
    formula-leading text cells neutralised unless ``neutralise`` is False)."""
    header = header_record(tx, company)
    raw_json = header.pop("raw_json")
    posted_at = datetime.now(UTC).isoformat()
    if fmt == "json":
        document = {"JournalNumber": journal, "TransactionId": tx.id, "PostedAt": posted_at,
                    "Header": header, "Lines": line_records(tx),
                    "Transaction": json.loads(raw_json)}
        return to_json(document).encode("utf-8")
    return csv_document(journal, posted_at, header, line_records(tx), neutralise=neutralise)


FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, with a leading ``'``; else as given."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def csv_document(journal: str, posted_at: str, header: dict[str, Any],
                 lines: list[dict[str, Any]], *, neutralise: bool = True) -> bytes:
    """One CSV row per line (a single row when there are none), header fields repeated."""
    head = {"JournalNumber": journal, "PostedAt": posted_at, **header}
    rows = [{**head, **{_line_column(k): v for k, v in line.items() if k != "transaction_id"}}
            for line in lines] or [head]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    clean = neutralise_formula if neutralise else (lambda v: v)
    writer.writerows({k: _cell(clean(v)) for k, v in r.items()} for r in rows)
    return out.getvalue().encode("utf-8")


def _line_column(name: str) -> str:
    return name if name.startswith("line_") else f"line_{name}"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return value if isinstance(value, str | int) else json_default(value)
