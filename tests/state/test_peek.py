"""The read-only look (sync.state.peek) answers exactly what the full store answers, and hands
every database it cannot read as the store would to the store."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Boolean

from sync.foundation.errors import StateCorrupt, StateError
from sync.foundation.files import sqlite_url_file as sqlite_file
from sync.state.models import JsonText, UtcDateTime, metadata
from sync.state.peek import HEAD, TABLES, VERSION_TABLE, Peek, utc_time
from sync.state.rows import LeaseRow, QuarantineEntry
from sync.state.store import StateStore

ROOT = Path(__file__).resolve().parents[2]
NOTE = "Zürich \u2013 5 €"


def _fill(store: StateStore) -> None:
    """Rows of every table the operator commands read, with NULLs, unicode and odd values."""
    for company, job, kind in (("uk", "reference", "suppliers"), ("de", "poll", None),
                               ("uk", "reference", "currencies")):
        run = store.start_run(company, job, kind)
        if kind != "currencies":  # one run left running: no finish time, no outcome
            store.finish_run(run, "ok" if job == "poll" else "failed",
                             {"created": 3, "note": NOTE, "nested": {"a": [1, None]}},
                             "ERP said: \u00e9chec" if job == "reference" else None)
    store.quarantine("uk", "suppliers", [
        QuarantineEntry("S1", "bad_vat", "'GB1' is not a valid VAT number", "VatNumber"),
        QuarantineEntry("S2", "missing", "no name", None, source_digest="ab" * 32),
        QuarantineEntry("S3", "refused", "iCompleat said 422", "Name", origin="remote")])
    store.quarantine("de", "taxcodes", [QuarantineEntry("T1", "bad", "too long", "Code")])
    rows = store.quarantined("uk", "suppliers", None)
    store.set_quarantine_status([rows[1].id], "retry")
    store.set_quarantine_status([rows[2].id], "resolved")
    for i, (company, status) in enumerate((("c1", "seen"), ("c1", "quarantined"),
                                           ("c2", "posted"), ("c2", "quarantined"))):
        store.ledger_seen(company, f"tx{i}", "invoice")
        if status != "seen":
            store.ledger_transition(company, f"tx{i}", expect=["seen"], to=status,
                                    attempts=i, last_error=f"error {i}" if i % 2 else None,
                                    next_attempt_at=datetime(2026, 1, 2, 3, 4, 5, 6, UTC),
                                    journal_number="J9" if status == "posted" else None)
    store.begin_refresh("uk", "suppliers", total_chunks=4, plan_hash="p1")
    store.advance_refresh("uk", "suppliers", chunks_sent=2, token="tok",
                          token_expires_at=datetime(2027, 1, 1, tzinfo=UTC))
    store.begin_refresh("de", "sites", total_chunks=1, plan_hash="p2")
    assert store.acquire_lease("live", "host:1:a", 600) is not None
    assert store.acquire_lease("gone", "host:2:b", 0.05) is not None
    time.sleep(0.1)
    store.record_capability("Tenant-A", "supplier.edit", supported=False, status=405,
                            detail="Method Not Allowed")
    store.record_capability("tenant-a", "supplier.delete", supported=True)
    store.record_capability("other", "transaction.journal", supported=False, status=404)
    store.save_poll_cursor("c1", "invoice", 3, ["a", "b"])
    store.save_poll_cursor("c1", "credit", 1, [], swept_at=datetime(2026, 5, 6, tzinfo=UTC))


def _filled(folder: Path) -> str:
    url = f"sqlite:///{folder / 'state.db'}"
    with StateStore.open(url) as store:
        _fill(store)
    return url


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite state database at the head with rows in every table the commands read (shared
    by the tests that only read it)."""
    return _filled(tmp_path_factory.mktemp("peek"))


@pytest.fixture
def own(tmp_path: Path) -> str:
    """The same, for one test that changes or damages it."""
    return _filled(tmp_path)


CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("last_runs", ()), ("last_runs", (None, 2)), ("last_runs", ("uk",)), ("last_runs", ("no",)),
    ("quarantined", ()), ("quarantined", (None, None, None)), ("quarantined", ("uk",)),
    ("quarantined", ("uk", "suppliers", "retry")), ("quarantined", (None, "taxcodes", "open")),
    ("ledger_rows", ()), ("ledger_rows", ("c1",)), ("ledger_rows", (None, ["quarantined"])),
    ("ledger_rows", ("c2", ["posted", "seen"])), ("ledger_rows", (None, [])),
    ("open_refreshes", ()), ("open_refreshes", ("de",)),
    ("capabilities", ()), ("capabilities", ("TENANT-a",)), ("capabilities", ("none",)),
    ("poll_cursors", ()),
]


@pytest.mark.parametrize(("method", "args"), CALLS, ids=[f"{m}{a}" for m, a in CALLS])
def test_every_read_answers_as_the_store_does(filled: str, method: str,
                                               args: tuple[Any, ...]) -> None:
    """The same rows, values, types and order from both."""
    with StateStore.open(filled, check=False) as store, Peek.open(filled) as peek:
        assert isinstance(peek, Peek)
        expected = getattr(store, method)(*args)
        got = getattr(peek, method)(*args)
    assert got == expected
    assert [type(r) for r in got] == [type(r) for r in expected]
    if method == "last_runs" and not args:
        assert len(got) == 3
        assert got[0].finished_at is None
        assert got[1].counts["note"] == NOTE
        assert all(r.started_at.tzinfo is UTC for r in got)


def test_leases_answer_as_the_store_does(filled: str) -> None:
    """Holder, token, expiry and liveness by the same clock (expiry a float: compared to the
    microsecond, as both convert it the same way)."""
    with StateStore.open(filled, check=False) as store, Peek.open(filled) as peek:
        assert peek is not None
        expected, got = store.leases(), peek.leases()
    assert got == expected
    assert [(r.name, r.live) for r in got] == [("gone", False), ("live", True)]
    assert all(isinstance(r, LeaseRow) for r in got)


def test_status_and_errors_list_print_the_same_with_either(filled: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """The commands' whole JSON documents, through the look and through the full store."""
    from sync.cli import errors, status
    from sync.foundation.tomlout import toml_text
    from sync.runtime import context
    from tests.reference.support import settings_dict

    config = tmp_path / "icsync.toml"
    settings = settings_dict("http://127.0.0.1:9", tmp_path / "erp.db", tmp_path / "state.db")
    settings["state"]["url"] = filled
    config.write_text(toml_text(settings))
    from sync.foundation.config import load_config

    loaded = load_config(config)
    with Peek.open(filled) as peek, StateStore.open(filled, check=False) as store:
        assert peek is not None
        doc = status.collect(peek, loaded)
        assert doc == status.collect(store, loaded)
        assert all(doc[part] for part in ("runs", "quarantine", "ledger", "leases"))
        assert errors.find(peek, loaded, None, None) == errors.find(store, loaded, None, None)
    opened: list[str] = []
    real = context.open_store

    def spy(*args: Any, **kwargs: Any) -> StateStore:
        opened.append("store")
        return real(*args, **kwargs)

    monkeypatch.setattr(context, "open_store", spy)
    reader = context.open_reader(loaded)
    reader.close()
    assert isinstance(reader, Peek)
    assert opened == []


def test_the_decoders_follow_the_tables() -> None:
    """Every time, JSON and boolean column a row class is read from is decoded, and only
    those: a column added to the models with such a type fails here until peek decodes it."""
    from dataclasses import fields

    for row, (table_name, decoders) in TABLES.items():
        table = metadata.tables[table_name]
        names = [f.name for f in fields(row)]
        assert set(names) <= set(table.c.keys()), (row, set(names) - set(table.c.keys()))
        for name in names:
            kind = type(table.c[name].type)
            if kind is UtcDateTime:
                assert decoders.get(name) is utc_time, (table_name, name)
            elif kind is JsonText or kind is Boolean:
                assert name in decoders, (table_name, name)
            elif name not in ("ids",):  # poll_cursors.ids: a JSON list kept as Text
                assert name not in decoders, (table_name, name)


def test_head_is_the_newest_migration() -> None:
    """The look and the store agree on the schema revision they need."""
    from sync.state import migrate

    assert migrate.HEAD == HEAD == migrate.head_revision()
    assert migrate.VERSION_TABLE == VERSION_TABLE


@pytest.mark.parametrize(("url", "file"), [
    ("sqlite:////srv/x.db", "/srv/x.db"), ("sqlite:///rel/x.db", "rel/x.db"),
    ("sqlite+pysqlite:////srv/x.db", "/srv/x.db"), ("sqlite://", None), ("sqlite:///", None),
    ("sqlite:///:memory:", None), ("sqlite:////srv/x.db?mode=ro", None),
    ("sqlite:////srv/a%20b.db", None), ("postgresql+psycopg://u@h/db", None),
    ("mysql:///x", None), ("", None),
])
def test_only_plain_sqlite_files_are_looked_at(url: str, file: str | None) -> None:
    """Anything but a plain SQLite file URL is left to the full store's URL parser."""
    assert sqlite_file(url) == file


def _db(path: Path, *statements: str) -> str:
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in statements:
            conn.execute(statement)
    return f"sqlite:///{path}"


def test_databases_the_look_cannot_read_go_to_the_full_store(tmp_path: Path) -> None:
    """Missing, empty, at an older or newer revision, not a database, a folder: None, and
    nothing is created or changed."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    cases = {
        "missing": f"sqlite:///{tmp_path / 'missing.db'}",
        "empty": _db(tmp_path / "empty.db", "CREATE TABLE t (x)"),
        "older": _db(tmp_path / "old.db", f"CREATE TABLE {VERSION_TABLE} (version_num TEXT)",
                     f"INSERT INTO {VERSION_TABLE} VALUES ('0003')"),
        "newer": _db(tmp_path / "new.db", f"CREATE TABLE {VERSION_TABLE} (version_num TEXT)",
                     f"INSERT INTO {VERSION_TABLE} VALUES ('9999')"),
        "garbage": f"sqlite:///{garbage}",
        "folder": f"sqlite:///{tmp_path}",
    }
    for name, url in cases.items():
        before = sorted(p.name for p in tmp_path.iterdir())
        assert Peek.open(url) is None, name
        assert sorted(p.name for p in tmp_path.iterdir()) == before, name
    assert garbage.read_bytes() == b"this is not a database" * 100


def test_the_look_writes_nothing(own: str) -> None:
    """A write through its connection is refused (query_only)."""
    peek = Peek.open(own)
    assert peek is not None
    with peek, pytest.raises(sqlite3.OperationalError, match="readonly"):
        peek._conn.execute("DELETE FROM runs")
    with StateStore.open(own, check=False) as store:
        assert len(store.last_runs()) == 3


def test_a_table_damaged_after_opening_is_state_corrupt(own: str) -> None:
    """A query that meets a damaged page raises StateCorrupt with the file and what to do;
    another failure is a StateError naming the action."""
    path = Path(sqlite_file(own) or "")
    with closing(sqlite3.connect(path)) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'quarantine'"
                            ).fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    peek = Peek.open(own)
    assert peek is not None
    with path.open("r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\xff" * page)
    with peek, pytest.raises(StateCorrupt, match=r"is damaged .* restore the last good backup"):
        peek.quarantined(None, None, None)
    broken = Peek.open(own)
    if broken is not None:  # the version table sits on another page and reads fine
        with broken:
            broken._conn.execute("PRAGMA query_only=OFF")
            broken._conn.execute("DROP TABLE poll_cursors")
            with pytest.raises(StateError, match="reading poll cursors failed: no such table"):
                broken.poll_cursors()


def test_status_reads_a_state_database_without_sqlalchemy(tmp_path: Path) -> None:
    """Once the database exists, ``status`` and ``errors list`` import neither SQLAlchemy nor
    Alembic; the first run, which creates the database, does (the probe can fail)."""
    from sync.foundation.tomlout import toml_text
    from tests.reference.support import settings_dict

    config = tmp_path / "icsync.toml"
    config.write_text(toml_text(settings_dict("http://127.0.0.1:9", tmp_path / "erp.db",
                                              tmp_path / "state.db")))
    probe = ("import json, sys\nfrom sync.cli import main\n"
             "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
             "print('\\nMODULES ' + json.dumps(sorted({m.split('.')[0] for m in sys.modules} "
             "& {'sqlalchemy', 'alembic'})), code)\n")

    def modules(*args: str) -> str:
        out = subprocess.run([sys.executable, "-c", probe, *args, "--config", str(config)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
        lines = [line for line in out.stdout.splitlines() if line.startswith("MODULES ")]
        assert lines, out.stderr
        return lines[-1]

    assert modules("status") == 'MODULES ["sqlalchemy"] 0'  # creates the database
    assert modules("status") == "MODULES [] 0"
    assert modules("status", "--json") == "MODULES [] 0"
    assert modules("errors", "list") == "MODULES [] 0"
    assert modules("errors", "resolve", "--all") == 'MODULES ["sqlalchemy"] 0'


def test_times_read_back_as_aware_utc() -> None:
    """With and without microseconds, as SQLAlchemy writes them on SQLite."""
    assert utc_time("2026-01-02 03:04:05.000006") == datetime(2026, 1, 2, 3, 4, 5, 6, UTC)
    assert utc_time("2026-01-02 03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert utc_time(None) is None
    assert utc_time("2026-01-02 03:04:05") - timedelta(seconds=5) == datetime(
        2026, 1, 2, 3, 4, tzinfo=UTC)


def test_paths_with_spaces_and_relative_paths_are_looked_at(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """A folder name with a space (escaped for SQLite's URI form) and a path relative to the
    working directory, as the full store reads them."""
    folder = tmp_path / "state files"
    folder.mkdir()
    absolute = f"sqlite:///{folder / 'my state.db'}"
    with StateStore.open(absolute) as store:
        store.start_run("uk", "reference", "suppliers")
    monkeypatch.chdir(folder)
    for url in (absolute, "sqlite:///my state.db"):
        peek = Peek.open(url)
        assert peek is not None, url
        with peek:
            assert [r.company for r in peek.last_runs()] == ["uk"]
            assert peek.url_for_display == url


def test_a_lease_is_looked_at_as_the_store_looks(filled: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Held (None), expired (its token, to compare with the next fence), never taken (0); the
    read-ahead's look goes through the look, not the full store, when it can."""
    from sync.foundation.config import load_config
    from sync.foundation.tomlout import toml_text
    from sync.runtime import context
    from tests.reference.support import settings_dict

    with StateStore.open(filled, check=False) as store, Peek.open(filled) as peek:
        assert peek is not None
        for name in ("live", "gone", "never"):
            assert peek.look_lease(name) == store.look_lease(name), name
        assert peek.look_lease("live") is None
        assert peek.look_lease("never") == store.look_lease("never")
    config = tmp_path / "icsync.toml"
    settings = settings_dict("http://127.0.0.1:9", tmp_path / "erp.db", tmp_path / "state.db")
    settings["state"]["url"] = filled
    config.write_text(toml_text(settings))
    loaded = load_config(config)

    def no_store(*_args: Any, **_kwargs: Any) -> StateStore:
        raise AssertionError("the full store was opened")

    monkeypatch.setattr(context, "open_store", no_store)
    gone = context.look_lease(loaded, "gone")
    assert gone is not None
    assert gone.token == 1
    assert context.look_lease(loaded, "live") is None


@pytest.mark.parametrize(("column", "text"), [("counts", "{not json"),
                                              ("started_at", "yesterday at noon")])
def test_a_stored_value_that_does_not_read_back_is_state_corrupt(
        own: str, column: str, text: str) -> None:
    """Text the store never writes (the file was changed by hand or damaged) is StateCorrupt
    naming the table, the column and the value, through the look and (for JSON) the store,
    never a traceback from the decoder."""
    path = Path(sqlite_file(own) or "")
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"UPDATE runs SET {column} = ? WHERE id = (SELECT max(id) FROM runs)",
                     (text,))
    peek = Peek.open(own)
    assert peek is not None
    with peek, pytest.raises(StateCorrupt, match=rf"runs\.{column} holds .* does not read back"):
        peek.last_runs()
    if column == "counts":
        with StateStore.open(own, check=False) as store, pytest.raises(
                StateCorrupt, match=re.escape("a stored JSON value '{not json' does not read")):
            store.last_runs()


def test_status_reports_a_damaged_value_without_a_traceback(own: str, tmp_path: Path) -> None:
    """``icsync status`` on such a file: exit non-zero, one clear message, no traceback."""
    from sync.foundation.tomlout import toml_text
    from tests.reference.support import settings_dict

    path = Path(sqlite_file(own) or "")
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE runs SET counts = '{not json'")
    config = tmp_path / "icsync.toml"
    settings = settings_dict("http://127.0.0.1:9", tmp_path / "erp.db", path)
    settings["state"]["url"] = own
    config.write_text(toml_text(settings))
    done = subprocess.run([sys.executable, "-m", "sync.cli", "status", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "runs.counts holds" in done.stderr
    assert "restore the last good backup" in done.stderr
