"""Opening the state database: migrations, integrity, SQLite settings, secrets, backups."""

from __future__ import annotations

import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from sync.foundation.errors import ConfigError, StateCorrupt, StateError
from sync.foundation.secrets import Secret
from sync.state.db import Database, create_state_engine, state_url
from sync.state.migrate import HEAD, VERSION_TABLE, head_revision, upgrade
from sync.state.models import metadata
from sync.state.store import StateStore

FIRST = "0001"


def database(url: str) -> Database:
    """A bare, unmigrated database handle (what StateStore.open builds on)."""
    parsed = state_url(url)
    return Database(create_state_engine(parsed, timeout=10), parsed)


def test_open_migrates_to_head(store: StateStore) -> None:
    """A new database is created at the newest revision."""
    assert store.schema_revision() == head_revision()
    store.ping()


def test_the_head_constant_is_the_newest_script() -> None:
    """HEAD (which spares opening a current database from loading Alembic) is the newest
    migration script's revision: a new script must move it."""
    assert head_revision() == HEAD


def test_a_current_database_opens_without_alembic(tmp_path: Path) -> None:
    """Opening a database already at the head reads its revision by plain SQL."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore.open(url).close()
    code = ("import sys; from sync.state.store import StateStore; "
            f"StateStore.open({url!r}).close(); "
            "sys.exit(1 if any(m.startswith('alembic') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_old_database_is_migrated_not_recreated(state_url: str) -> None:
    """A database left at the first revision keeps its rows and gains the new tables."""
    old = database(state_url)
    upgrade(old, FIRST)
    with old.write("seeding") as conn:
        conn.execute(text("INSERT INTO remote_records (company, kind, key, record, digest, "
                          "synced_at) VALUES ('uk', 'currencies', 'GBP', :rec, 'd1', :at)"),
                     {"rec": '{"Code":"GBP","Name":"Livre £"}', "at": "2025-01-01 00:00:00"})
    old.dispose()
    with pytest.raises(StateError, match=f"revision {FIRST}.*needs {head_revision()}"):
        StateStore.open(state_url, migrate=False)
    with StateStore.open(state_url) as store:
        assert store.schema_revision() == head_revision()
        assert store.remote_records("uk", "currencies") == {
            "GBP": {"Code": "GBP", "Name": "Livre £"}}
        assert store.ledger_seen("C1", "tx", "INV").status == "seen"
    with StateStore.open(state_url, migrate=False) as again:
        assert again.remote_count("uk", "currencies") == 1


def test_newer_revision_is_refused(state_url: str) -> None:
    """A database written by a newer icsync is refused with what to do."""
    with StateStore.open(state_url) as store, store._db.write("faking a newer version") as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    for migrate in (True, False):
        with pytest.raises(StateError, match=r"9999.*newer version.*Upgrade icsync"):
            StateStore.open(state_url, migrate=migrate)


def schema_of(db: Database) -> tuple[list[object], list[str], dict[str, list[object]]]:
    """What Alembic finds different from the models; the revisions; the indexes and unique
    constraints by table (names included)."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        diff = compare_metadata(context, metadata)
        revisions = list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
                         .scalars())
        inspector = inspect(conn)
        shape: dict[str, list[object]] = {
            table: sorted(map(repr, [*inspector.get_indexes(table),
                                     *inspector.get_unique_constraints(table),
                                     inspector.get_pk_constraint(table),
                                     *inspector.get_foreign_keys(table)]))
            for table in inspector.get_table_names()}
    return diff, revisions, shape


def test_migrations_build_exactly_the_models(state_url: str) -> None:
    """The schema the migrations build (every revision replayed by Alembic) equals the models'
    (tables, columns, types, indexes)."""
    db = database(state_url)
    upgrade(db)
    try:
        assert schema_of(db)[0] == []
    finally:
        db.dispose()


def test_a_new_database_is_created_as_the_migrations_build_it(state_url: str,
                                                                tmp_path: Path) -> None:
    """Opening an empty database creates the head schema from the models without Alembic;
    it is what replaying the migrations builds (constraint names and the revision table
    included), and Alembic can take it down and up again."""
    code = ("import sys; from sync.state.store import StateStore; "
            f"StateStore.open({state_url!r}).close(); "
            "sys.exit(1 if any(m.startswith('alembic') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    fresh = database(state_url)
    created = schema_of(fresh)
    assert created[0] == []
    assert created[1] == [HEAD]
    other = f"sqlite:///{tmp_path / 'migrated.db'}"
    if not state_url.startswith("sqlite"):
        with fresh.engine.connect() as conn:
            names = set(conn.dialect.get_table_names(conn))
        assert names == {*metadata.tables, VERSION_TABLE}
    else:
        migrated = database(other)
        upgrade(migrated)
        assert schema_of(migrated) == created
        migrated.dispose()
    from alembic import command

    from sync.state.migrate import alembic_config

    with fresh.write("downgrading") as conn:
        command.downgrade(alembic_config(conn), FIRST)
    fresh.dispose()
    with StateStore.open(state_url) as store:
        assert store.schema_revision() == HEAD
        assert store.remote_count("uk", "suppliers") == 0


def test_downgrade_and_upgrade_round_trip(state_url: str) -> None:
    """Each revision's downgrade undoes its upgrade, so revisions can be replayed."""
    from alembic import command

    from sync.state.migrate import alembic_config

    db = database(state_url)
    upgrade(db)
    with db.write("downgrading") as conn:
        command.downgrade(alembic_config(conn), "base")
    with db.read("listing") as conn:
        names = set(conn.dialect.get_table_names(conn))
    db.dispose()
    assert names <= {VERSION_TABLE}
    with StateStore.open(state_url) as store:
        assert store.schema_revision() == head_revision()


def test_concurrent_first_opens_migrate_once(state_url: str) -> None:
    """Several processes starting together on an empty database all open it."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=20)

    def open_one() -> None:
        barrier.wait()
        try:
            StateStore.open(state_url, timeout=20).close()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


def test_a_first_open_waits_for_another_opener_s_write_lock(tmp_path: Path) -> None:
    """Another instance holds a write lock on a new file still in rollback mode (it is creating
    the tables): switching to WAL is refused at once by SQLite, so the open tries again within
    its busy timeout instead of failing ("database is locked")."""
    path = tmp_path / "state.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE other_instance (x)")
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        started = time.monotonic()
        StateStore.open(f"sqlite:///{path}", timeout=10).close()
        assert time.monotonic() - started >= 0.4
    finally:
        release.join()
        other.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def sqlite_store(tmp_path: Path) -> tuple[Path, str]:
    """A SQLite state file path and its URL."""
    path = tmp_path / "state.db"
    return path, f"sqlite:///{path}"


def test_sqlite_settings(tmp_path: Path) -> None:
    """WAL, synchronous FULL, foreign keys and the busy timeout are on for every connection."""
    path, url = sqlite_store(tmp_path)
    with StateStore.open(url, timeout=7) as store, store._db.engine.connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                      "busy_timeout": 7000}
    assert path.exists()


def fill(url: str, rows: int) -> None:
    """Open, write ``rows`` sizeable records, close (checkpointing the WAL into the file)."""
    with StateStore.open(url) as store:
        store.upsert_remote("uk", "suppliers", [
            (f"S{i:04d}", {"Code": f"S{i:04d}", "Name": "x" * 300}, f"{i:064x}")
            for i in range(rows)])


def test_garbage_in_a_page_is_corrupt(tmp_path: Path) -> None:
    """A database with a damaged page is refused, named, with what to do; it is kept as is."""
    path, url = sqlite_store(tmp_path)
    fill(url, 400)
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    page = len(data) // page_size // 2
    data[page * page_size:(page + 1) * page_size] = random.Random(7).randbytes(page_size)
    path.write_bytes(bytes(data))
    with pytest.raises(StateCorrupt) as caught:
        StateStore.open(url)
    message = str(caught.value)
    assert str(path) in message
    assert "restore the last good backup" in message
    assert "move it aside" in message
    assert path.read_bytes() == bytes(data)


def test_failed_quick_check_is_corrupt(tmp_path: Path) -> None:
    """Damage the quick check reports (a NULL in a NOT NULL column) is refused with its text."""
    path, url = sqlite_store(tmp_path)
    fill(url, 3)
    raw = sqlite3.connect(path, isolation_level=None)
    (sql,) = raw.execute("SELECT sql FROM sqlite_schema WHERE name = 'remote_records'").fetchone()
    raw.execute("PRAGMA writable_schema=ON")
    loose = sql.replace("digest VARCHAR NOT NULL", "digest VARCHAR")
    assert loose != sql
    raw.execute("UPDATE sqlite_schema SET sql = ? WHERE name = 'remote_records'", (loose,))
    raw.close()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("UPDATE remote_records SET digest = NULL WHERE key = 'S0001'")
    raw.execute("PRAGMA writable_schema=ON")
    raw.execute("UPDATE sqlite_schema SET sql = ? WHERE name = 'remote_records'", (sql,))
    raw.close()
    with pytest.raises(StateCorrupt, match=r"NULL value in remote_records\.digest"):
        StateStore.open(url)


def test_a_file_that_is_not_a_database_is_corrupt(tmp_path: Path) -> None:
    """A text file where the state should be is refused, never replaced."""
    path, url = sqlite_store(tmp_path)
    content = b"these are not the rows you are looking for\n" * 200
    path.write_bytes(content)
    with pytest.raises(StateCorrupt, match="not a database"):
        StateStore.open(url)
    assert path.read_bytes() == content


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A state path in a directory that does not exist is reported, not created."""
    with pytest.raises(StateError, match="does not exist"):
        StateStore.open(f"sqlite:///{tmp_path / 'nope' / 'state.db'}")
    assert not (tmp_path / "nope").exists()


def test_restore_from_a_file_backup(tmp_path: Path) -> None:
    """Copying the file back after later changes gives the backed-up state, still writable."""
    path, url = sqlite_store(tmp_path)
    with StateStore.open(url) as store:
        store.upsert_remote("uk", "suppliers", [("A", {"Code": "A"}, "d-a")])
        store.ledger_seen("C1", "tx-1", "INV")
        store.ledger_transition("C1", "tx-1", expect=["seen"], to="posted", journal_number="J1")
    backup = tmp_path / "backup.db"
    shutil.copyfile(path, backup)
    with StateStore.open(url) as store:
        store.upsert_remote("uk", "suppliers", [("B", {"Code": "B"}, "d-b")])
        store.ledger_seen("C1", "tx-2", "INV")
    shutil.copyfile(backup, path)
    with StateStore.open(url) as store:
        assert store.remote_digests("uk", "suppliers") == {"A": "d-a"}
        row = store.ledger_get("C1", "tx-1")
        assert row is not None
        assert (row.status, row.journal_number) == ("posted", "J1")
        assert store.ledger_get("C1", "tx-2") is None
        store.upsert_remote("uk", "suppliers", [("C", {"Code": "C"}, "d-c")])
        assert store.remote_count("uk", "suppliers") == 2
    assert sqlite3.connect(path).execute("PRAGMA quick_check").fetchone() == ("ok",)


def test_unsupported_or_malformed_urls_are_config_errors() -> None:
    """Only SQLite and PostgreSQL URLs are accepted, and the error names the key."""
    with pytest.raises(ConfigError, match=r"state\.url.*unsupported"):
        StateStore.open("mysql://u@h/db")
    with pytest.raises(ConfigError, match=r"state\.url.*not a database URL"):
        StateStore.open("::not a url::")


@pytest.mark.postgres
def test_postgres_password_never_shown(pg_database_url: str) -> None:
    """The password from a Secret connects but appears in no display, repr or error."""
    password = "s3cret-Pa55word-for-state"
    with StateStore.open(pg_database_url, password=Secret(password, origin="test")) as store:
        assert "***" in store.url_for_display
        assert password not in store.url_for_display
        assert password not in repr(store)
    refused = "postgresql+psycopg://icsync@127.0.0.1:9/state"
    with pytest.raises(StateError) as caught:
        StateStore.open(refused, password=Secret(password), timeout=2)
    texts = [str(caught.value), repr(caught.value), str(caught.value.__cause__)]
    assert all(password not in t for t in texts)
    assert "127.0.0.1:9" in str(caught.value)


def test_inline_password_is_masked(tmp_path: Path) -> None:
    """A password written into the URL itself is masked in what is displayed."""
    with pytest.raises(StateError) as caught:
        StateStore.open("postgresql://icsync:inline-pass-123@127.0.0.1:9/x", timeout=1)
    assert "inline-pass-123" not in str(caught.value)
    assert "***" in str(caught.value)


def test_in_memory_sqlite_for_tests_and_demos() -> None:
    """``sqlite://`` opens a private in-memory state, migrated like a file."""
    with StateStore.open("sqlite://") as store:
        store.upsert_remote("uk", "currencies", [("GBP", {"Code": "GBP"}, "d")])
        assert store.remote_count("uk", "currencies") == 1
        assert store.schema_revision() == head_revision()


def test_a_locked_database_times_out_with_a_state_error(tmp_path: Path) -> None:
    """A writer blocked past the timeout by another program gets StateError; reads still work."""
    path, url = sqlite_store(tmp_path)
    with StateStore.open(url, timeout=0.3) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StateError, match="locked"):
                store.start_run("uk", "reference")
            assert store.last_runs() == []
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.start_run("uk", "reference") > 0
