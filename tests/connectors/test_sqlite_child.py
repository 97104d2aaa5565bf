"""The SQLite query reader's child process: killed at the deadline, gone with its parent."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import pytest

from connectors import sqlite_child
from connectors.base import CompanyRef
from connectors.sql import SqlSource
from connectors.sqlite_child import QueryTimedOut, close_idle, prewarm, read_query
from sync.foundation.config import SqlSourceConfig
from sync.foundation.errors import SourceError

ROOT = Path(__file__).resolve().parents[2]
FOREVER = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
           "SELECT count(*) AS Code FROM n")


@pytest.fixture
def erp(tmp_path: Path) -> Path:
    path = tmp_path / "erp.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE s (Code TEXT, Name TEXT)")
        db.executemany("INSERT INTO s VALUES (?, ?)", [(f"S{i}", f"n{i}") for i in range(50)])
    return path


def readers(parent: int) -> list[int]:
    """Process ids of the running SQLite reader children of ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        state = stat.rsplit(")", 1)[1].split()[0]
        if ppid == parent and b"connectors.sqlite_child" in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def no_idle_readers() -> Iterator[None]:
    """Each test starts and ends without idle readers (or reads ahead) of this process."""
    sqlite_child.discard_ahead()
    close_idle()
    yield
    sqlite_child.discard_ahead()
    close_idle()


def test_rows_and_bound_parameters(erp: Path) -> None:
    """The child reads the rows, with positional parameters bound (never formatted in)."""
    table = read_query(str(erp), "SELECT * FROM s WHERE Code = ? OR Name = ?",
                       ["S3", "n7' OR 1=1 --"], 30)
    assert table is not None
    assert table.column("Code").to_pylist() == ["S3"]


def test_one_child_serves_read_after_read_and_goes_when_closed(erp: Path) -> None:
    """A prewarmed child answers the first read and the next ones (one process, not one per
    read); closing the idle children stops it."""
    prewarm()
    started = readers(os.getpid())
    assert len(started) == 1
    for i in range(5):
        table = read_query(str(erp), "SELECT Code FROM s WHERE Code = ?", [f"S{i}"], 30)
        assert table is not None
        assert table.column("Code").to_pylist() == [f"S{i}"]
    assert readers(os.getpid()) == started
    close_idle()
    assert readers(os.getpid()) == []


def test_a_child_that_idled_out_is_replaced(erp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle child exits after IDLE_SECONDS; the next read starts a new one and succeeds."""
    monkeypatch.setattr(sqlite_child, "IDLE_SECONDS", 0.2)
    prewarm()
    first = readers(os.getpid())
    deadline = time.monotonic() + 20
    while readers(os.getpid()):
        assert time.monotonic() < deadline, "the idle child never exited"
        time.sleep(0.05)
    table = read_query(str(erp), "SELECT count(*) AS n FROM s", [], 30)
    assert table is not None
    assert table.column("n").to_pylist() == [50]
    assert first


def test_a_failure_stops_the_child_and_the_next_read_gets_a_new_one(erp: Path) -> None:
    """A failed read leaves no half-used child behind; reads go on."""
    assert read_query(str(erp), "SELECT * FROM missing", [], 30) is None
    assert readers(os.getpid()) == []
    assert read_query(str(erp), "SELECT count(*) AS n FROM s", [], 30) is not None
    assert len(readers(os.getpid())) == 1
    assert len(sqlite_child._idle) == 1


def test_a_failing_query_gives_none_for_the_row_by_row_read_to_report(erp: Path) -> None:
    """A syntax error or a missing table: no table (the SQLAlchemy read then reports it)."""
    assert read_query(str(erp), "SELEC nonsense", [], 30) is None
    assert read_query(str(erp), "SELECT * FROM missing", [], 30) is None


def test_a_runaway_query_is_killed_at_the_deadline(erp: Path) -> None:
    """Past timeout_seconds the child is killed and nothing of it is left running."""
    started = time.monotonic()
    with pytest.raises(QueryTimedOut, match=r"interrupted after 0\.5 s"):
        read_query(str(erp), FOREVER, [], 0.5)
    assert time.monotonic() - started < 5
    assert readers(os.getpid()) == []


def test_the_source_reports_a_runaway_query_as_a_source_error(erp: Path) -> None:
    """Through the SQL source: a SourceError naming the setting to change, no hang."""
    source = SqlSource("erp", SqlSourceConfig(
        type="sql", url=f"sqlite:///{erp}", timeout_seconds=0.5,
        kinds={"suppliers": {"query": FOREVER}}))
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"interrupted after 0\.5 s.*timeout_seconds"):
        source.read("suppliers", CompanyRef("uk", "c-1"))
    assert time.monotonic() - started < 5
    source.close()


def test_the_child_goes_when_its_parent_is_killed(erp: Path) -> None:
    """SIGKILL the process that started a runaway read: its child stops too."""
    code = ("import sys; from connectors.sqlite_child import read_query; "
            f"read_query({str(erp)!r}, {FOREVER!r}, [], 600)")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while not readers(parent.pid):
            assert time.monotonic() < deadline, "the reader child never started"
            time.sleep(0.05)
        child = readers(parent.pid)[0]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
            assert time.monotonic() < deadline, "the reader outlived its parent"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_no_secret_of_the_environment_reaches_the_child(
        erp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child's environment holds what an interpreter needs, not the parent's secrets."""
    monkeypatch.setenv("ICSYNC_API_KEY", "canary-key-in-the-environment")
    monkeypatch.setenv("PGPASSWORD", "canary-password-in-the-environment")
    prewarm()
    (child,) = readers(os.getpid())
    environ = Path(f"/proc/{child}/environ").read_bytes()
    assert b"canary" not in environ
    assert b"PATH=" in environ
    assert read_query(str(erp), "SELECT count(*) AS n FROM s", [], 30) is not None


def _add_row(erp: Path, code: str) -> None:
    with closing(sqlite3.connect(erp)) as db, db:
        db.execute("INSERT INTO s VALUES (?, ?)", (code, "late"))


def _wait_done(timeout: float = 20) -> None:
    """Until every read started ahead has its answer."""
    deadline = time.monotonic() + timeout
    while not all(a.done.is_set() for a in list(sqlite_child._ahead.values())):
        assert time.monotonic() < deadline, "the read ahead never finished"
        time.sleep(0.02)


def test_a_read_started_ahead_is_taken_once_by_the_same_read(erp: Path) -> None:
    """The same request takes the rows read ahead (a row added since is not in them); the next
    read reads again. Another request (other parameters) never takes them."""
    count = "SELECT count(*) AS n FROM s WHERE Code <> ?"
    assert sqlite_child.read_ahead(str(erp), count, ["none"], 30)
    assert not sqlite_child.read_ahead(str(erp), count, ["none"], 30)  # already on its way
    _wait_done()
    _add_row(erp, "S50")
    other = read_query(str(erp), count, ["S0"], 30)
    assert other is not None
    assert other.column("n").to_pylist() == [50]
    taken = read_query(str(erp), count, ["none"], 30)
    assert taken is not None
    assert taken.column("n").to_pylist() == [50]
    again = read_query(str(erp), count, ["none"], 30)
    assert again is not None
    assert again.column("n").to_pylist() == [51]
    assert sqlite_child._ahead == {}


def test_rows_read_ahead_too_long_ago_are_read_again(
        erp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_child, "AHEAD_SECONDS", 0.0)
    assert sqlite_child.read_ahead(str(erp), "SELECT count(*) AS n FROM s", [], 30)
    _wait_done()
    _add_row(erp, "S50")
    table = read_query(str(erp), "SELECT count(*) AS n FROM s", [], 30)
    assert table is not None
    assert table.column("n").to_pylist() == [51]


def test_a_read_ahead_past_its_deadline_is_the_read_s_timeout(erp: Path) -> None:
    """The read that takes a runaway query started ahead gets its QueryTimedOut, bounded by
    the deadline counted from the start, and no child is left running."""
    started = time.monotonic()
    assert sqlite_child.read_ahead(str(erp), FOREVER, [], 0.5)
    with pytest.raises(QueryTimedOut, match=r"interrupted after 0\.5 s"):
        read_query(str(erp), FOREVER, [], 0.5)
    assert time.monotonic() - started < 5
    assert readers(os.getpid()) == []


def test_a_failed_read_ahead_is_read_again_and_reported_as_before(erp: Path) -> None:
    assert sqlite_child.read_ahead(str(erp), "SELECT * FROM missing", [], 30)
    _wait_done()
    assert read_query(str(erp), "SELECT * FROM missing", [], 30) is None
    with closing(sqlite3.connect(erp)) as db, db:  # the failure is not kept
        db.execute("CREATE TABLE missing (x TEXT)")
    table = read_query(str(erp), "SELECT * FROM missing", [], 30)
    assert table is not None
    assert table.num_rows == 0


def test_discard_stops_a_read_ahead_and_its_child(erp: Path) -> None:
    """What was read ahead and not taken is dropped: a running read's child is killed at
    once (not at its deadline), and nothing is kept."""
    assert sqlite_child.read_ahead(str(erp), FOREVER, [], 600)
    deadline = time.monotonic() + 20
    while not readers(os.getpid()):
        assert time.monotonic() < deadline, "the reader child never started"
        time.sleep(0.05)
    started = time.monotonic()
    sqlite_child.discard_ahead()
    assert time.monotonic() - started < 5
    assert sqlite_child._ahead == {}
    deadline = time.monotonic() + 10
    while readers(os.getpid()):
        assert time.monotonic() < deadline, "the child of a dropped read kept running"
        time.sleep(0.05)


def test_reads_ahead_are_bounded(erp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_child, "AHEAD_MAX", 2)
    started = [sqlite_child.read_ahead(str(erp), "SELECT ? AS n", [i], 30) for i in range(3)]
    assert started == [True, True, False]
    sqlite_child.discard_ahead()


def test_a_large_answer_comes_whole_beside_a_busy_thread(tmp_path: Path) -> None:
    """Many record batches (more than any socket buffer) arrive whole and in order while
    another thread keeps the interpreter busy."""
    import threading

    path = tmp_path / "big.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE t (i INTEGER, s TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", ((i, "x" * (i % 50)) for i in range(200_000)))
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    busy = threading.Thread(target=spin)
    busy.start()
    try:
        table = read_query(str(path), "SELECT i, s FROM t ORDER BY i", [], 120)
    finally:
        stop.set()
        busy.join()
    assert table is not None
    assert table.num_rows == 200_000
    assert table.column("i").to_pylist() == list(range(200_000))
    assert table.column("s")[199_999].as_py() == "x" * (199_999 % 50)


def test_reads_ahead_run_one_after_another_in_one_child(erp: Path) -> None:
    """Several kinds started ahead are read in order by one child, not one child each."""
    for i in range(4):
        assert sqlite_child.read_ahead(str(erp), "SELECT count(*) + ? AS n FROM s", [i], 30)
    _wait_done()
    assert len(readers(os.getpid())) == 1
    for i in range(4):
        table = read_query(str(erp), "SELECT count(*) + ? AS n FROM s", [i], 30)
        assert table is not None
        assert table.column("n").to_pylist() == [50 + i]


def test_discard_drops_reads_not_yet_begun(erp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a runaway read, a queued read never starts once dropped; no child is left
    reading."""
    fetched: list[bytes] = []
    real_fetch = sqlite_child._fetch

    def fetch(request: bytes, timeout: float, ahead: Any = None) -> Any:
        fetched.append(request)
        return real_fetch(request, timeout, ahead)

    monkeypatch.setattr(sqlite_child, "_fetch", fetch)
    assert sqlite_child.read_ahead(str(erp), FOREVER, [], 600)
    assert sqlite_child.read_ahead(str(erp), "SELECT count(*) AS n FROM s", [], 600)
    deadline = time.monotonic() + 20
    while not readers(os.getpid()):
        assert time.monotonic() < deadline, "the reader child never started"
        time.sleep(0.05)
    sqlite_child.discard_ahead()
    time.sleep(0.3)  # time for a wrongly started second read to show
    assert [b"count(*) AS n" in r for r in fetched] == [False]
    assert sqlite_child._queue == deque()
    close_idle()
    assert readers(os.getpid()) == []


def test_a_reader_stopped_and_resumed_while_it_writes_loses_no_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader paused and resumed (job control, a debugger, a frozen cgroup) while its answer
    fills the socket, with standard output unbuffered by the environment (as the container
    image sets it): a write cut short by the stop is finished, so the stream arrives whole."""
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    path = tmp_path / "big.db"
    rows = [(f"S{i:06d}", f"supplier {i} " + "x" * (i % 200)) for i in range(120_000)]
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE s (Code TEXT, Name TEXT)")
        db.executemany("INSERT INTO s VALUES (?, ?)", rows)
    prewarm()
    done = threading.Event()

    def pause_and_resume() -> None:
        while not done.is_set():
            for pid in readers(os.getpid()):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(0.001)
                    os.kill(pid, signal.SIGCONT)
            time.sleep(0.002)

    pauser = threading.Thread(target=pause_and_resume, daemon=True)
    pauser.start()
    try:
        table = read_query(str(path), "SELECT Code, Name FROM s ORDER BY Code", [], 30)
    finally:
        done.set()
        pauser.join(10)
    assert table is not None, "the stream arrived broken"
    assert list(zip(table["Code"].to_pylist(), table["Name"].to_pylist(), strict=True)) == rows


@pytest.mark.parametrize(("text", "started"), [
    ('[sources.erp]\ntype = "sql"\nurl = "sqlite:////data/erp.db"\n', 1),
    ('[sources.erp]\ntype = "sql"\nurl = "sqlite:////data/erp.db"\narrow = false\n', 0),
    ('[sources.erp]\ntype = "sql"\nurl = "postgresql://erp/db"\n', 0),
    ('[sources.files]\ntype = "files"\ndirectory = "/data"\n', 0),
    ('sources = "sqlite"\n', 0),
    ("not toml [", 0),
    (None, 0),
], ids=["sqlite", "arrow-off", "postgresql", "files", "odd", "broken", "missing"])
def test_a_sync_starts_the_reader_before_its_configuration_is_checked(
        tmp_path: Path, text: str | None, started: int) -> None:
    """``icsync sync`` starts the SQLite reader at once when its configuration file names a
    SQLite source read as Arrow, and for nothing else; a file it cannot read starts none and
    raises nothing (the configuration's own loading reports it)."""
    from sync.cli.sync import start_reader

    path = tmp_path / "icsync.toml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    start_reader(path)
    assert len(readers(os.getpid())) == started


def test_a_configuration_given_through_a_pipe_is_left_for_its_loading(tmp_path: Path) -> None:
    """``--config <(...)``: the configuration arrives through a pipe, which can be read once.
    The look for a SQLite source leaves it alone (it would otherwise wait for a writer here,
    or take the text the configuration's loading then misses); the sync reads it whole."""
    from sync.cli.sync import start_reader
    from sync.foundation.config import load_config

    fifo = tmp_path / "icsync.toml"
    os.mkfifo(fifo)
    looked = threading.Thread(target=start_reader, args=(fifo,), daemon=True)
    looked.start()
    looked.join(5)
    assert not looked.is_alive(), "the look waited on the pipe"
    assert readers(os.getpid()) == []
    text = ('[sources.erp]\ntype = "sql"\nurl = "sqlite:////data/erp.db"\n'
            '[[companies]]\nname = "uk"\ncompany_id = "c-1"\nsource = "erp"\n'
            'kinds = ["suppliers"]\n[icompleat]\nbase_url = "http://127.0.0.1:9"\n'
            'tenant_id = "t"\napi_key = "k"\n')
    writer = threading.Thread(target=fifo.write_text, args=(text,), daemon=True)
    writer.start()
    config = load_config(fifo)
    writer.join(5)
    assert [c.name for c in config.settings.companies] == ["uk"]
