"""A SQLite query read as Arrow in a child process, so that the deadline can stop it.

ADBC's SQLite driver reads several times faster than row by row, but it cannot cancel a
statement, and a ``query`` can run forever (a recursive CTE, a join without its condition). So
the query runs in a child process of this module: it reads the rows through ADBC and streams
them to standard output as Arrow IPC record batches, and the parent kills it once
``timeout_seconds`` have passed (:class:`QueryTimedOut`). Killing a process stops SQLite for
certain and frees everything it held; the parent's read stays bounded whatever the query does.

A read can also be started AHEAD (:func:`read_ahead`): a thread sends the request now and
collects the rows, and the :func:`read_query` of the same request later takes them instead of
reading again. A one-shot ``icsync sync`` starts its kinds' reads this way as soon as its
configuration is loaded, so the reader process reads while this one is still importing and
opening the state database. Rows read ahead are taken once, and only within
:data:`AHEAD_SECONDS`; :func:`discard_ahead` (also at exit) stops and drops what was not taken.

A child serves one read after another: after a read it waits, idle, for the next request, so a
run of six kinds starts one interpreter instead of six, and :func:`prewarm` starts one before
the first read (while the parent is still importing and opening the state database). At most
:data:`POOL_SIZE` idle children are kept; an idle child exits after :data:`IDLE_SECONDS`, when
its standard input closes (the parent closed it, or is gone), and a busy one when its parent is
gone (it watches its parent process id), so a killed daemon leaves no query running behind it.
Any failure of the child other than the deadline (no driver, a syntax error, a locked file,
text that is not UTF-8, a column whose rows disagree on their type) gives None: the caller then
reads through SQLAlchemy, which reports the error as every other read does.

Protocol: one JSON line on standard input (``database``, ``sql``, ``params``); the answer is an
Arrow IPC stream on standard output followed by one zero byte, after which the child waits for
the next line. On a failure the child writes its first line on standard error (which the parent
ignores) and exits 3 without the zero byte, so a stream cut short is never taken for the rows.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow is imported where it is used: a read started ahead sends its request before this
# process has imported it (a few tenths of a second at start-up).

# Rows per record batch: fewer, larger batches stream faster, and the driver infers each
# column's type from a whole first batch rather than its first 1,024 rows.
BATCH_ROWS = 65_536
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


# Idle children kept for the next read, and how long an idle child waits before it exits.
POOL_SIZE = 2
IDLE_SECONDS = 120.0
_OK = b"\0"
_WRITE_BUFFER = 1 << 16
_PARENT, _IDLE = "ICSYNC_READER_PARENT", "ICSYNC_READER_IDLE_SECONDS"  # parent to child
_KEPT = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TMPDIR", "TZ", "SYSTEMROOT"})

# A read started ahead is taken only this many seconds after it started (older rows are read
# again), and at most this many are kept at once.
AHEAD_SECONDS = 300.0
AHEAD_MAX = 16

_idle: list[_Child] = []
_lock = threading.Lock()


class QueryTimedOut(Exception):
    """The child was killed at the deadline."""


def child_env() -> dict[str, str]:
    """The child's environment: what an interpreter needs and nothing else, so no secret
    given in the environment (``ICSYNC_API_KEY``, a database password) reaches it."""
    env = {name: value for name, value in os.environ.items()
           if name in _KEPT or name.startswith(("LC_", "PYTHON"))}
    env.update({"PYTHONPATH": os.pathsep.join(
        p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p),
        _PARENT: str(os.getpid()), _IDLE: repr(IDLE_SECONDS)})
    return env


def binary_stdout() -> BinaryIO:
    """A child's standard output as a BUFFERED binary stream, whatever the environment says.

    Under ``PYTHONUNBUFFERED`` (the container image sets it, and a child inherits it)
    ``sys.stdout.buffer`` is the raw file, whose ``write`` may write only part of what it is
    given: a write to a full pipe or socket that a stop and resume (job control, a debugger, a
    frozen cgroup) interrupts returns short, and the rest would be lost, mis-framing every
    answer after it. A buffered writer writes it all."""
    return open(sys.stdout.fileno(), "wb", buffering=_WRITE_BUFFER,
                closefd=False)


class _Child(subprocess.Popen[bytes]):
    """A reader process, and the socket its answers come on (its standard output)."""

    answers: socket.socket


def _spawn() -> _Child | None:
    try:
        ours, theirs = socket.socketpair()
    except OSError:
        return None
    try:
        proc = _Child([sys.executable, "-m", "connectors.sqlite_child"],
                      stdin=subprocess.PIPE, stdout=theirs.fileno(), stderr=subprocess.DEVNULL,
                      env=child_env())
    except OSError:
        ours.close()
        return None
    finally:
        theirs.close()
    proc.answers = ours
    return proc


def _retire(proc: _Child, *, kill: bool) -> None:
    """Stop ``proc`` (closing its standard input is enough for an idle child) and reap it."""
    if kill and proc.poll() is None:
        proc.kill()
    for stream in (proc.stdin, proc.answers):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _take() -> tuple[_Child | None, bool]:
    """An idle child (reused: True), or a new one."""
    with _lock:
        while _idle:
            proc = _idle.pop()
            if proc.poll() is None:
                return proc, True
            _retire(proc, kill=False)
    return _spawn(), False


def _give_back(proc: _Child) -> None:
    with _lock:
        if len(_idle) < POOL_SIZE:
            _idle.append(proc)
            return
    _retire(proc, kill=False)


def prewarm() -> None:
    """Start an idle child now (if none is idle), so the first read finds one ready."""
    with _lock:
        if any(p.poll() is None for p in _idle):
            return
    proc = _spawn()
    if proc is not None:
        _give_back(proc)


def close_idle() -> None:
    """Stop every idle child (each exits when its standard input closes)."""
    with _lock:
        idle, _idle[:] = list(_idle), []
    for proc in idle:
        _retire(proc, kill=False)


def _forget() -> None:
    """In a forked process: the parent's idle children are not this process's to use."""
    global _lock, _worker
    _idle.clear()
    _ahead.clear()
    _queue.clear()
    _worker = None
    _lock = threading.Lock()


atexit.register(close_idle)
os.register_at_fork(after_in_child=_forget)


def _ask(proc: _Child, request: bytes, timeout: float) -> pa.Table | None:
    """Send ``request`` to ``proc`` and read its answer; None when it failed (``proc`` is then
    stopped); QueryTimedOut (``proc`` killed) past ``timeout`` seconds."""
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        proc.kill()

    import pyarrow as pa

    timer = threading.Timer(timeout, stop)
    timer.daemon = True
    timer.start()
    table: pa.Table | None = None
    try:
        if proc.stdin is None:
            raise OSError("the child has no pipe")
        proc.stdin.write(request)
        proc.stdin.flush()
        answers = _Answers(proc.answers)
        table = pa.ipc.open_stream(answers).read_all()
        if answers.read(1) != _OK:  # the child failed after the stream: not the rows
            table = None
    except (OSError, ValueError, pa.ArrowException):
        table = None
    finally:
        timer.cancel()
        timer.join()  # gone before the caller goes on (a process exit counts its threads)
    if timed_out.is_set():
        _retire(proc, kill=True)
        raise QueryTimedOut(f"interrupted after {timeout:g} s")
    if table is None:
        _retire(proc, kill=True)
    return table


class _Answers:
    """The reading end of a child's answer socket as a file for Arrow's stream reader.

    Each read waits in one system call for all the bytes asked for (``MSG_WAITALL``), without
    the interpreter's lock: a pipe read through a Python file object takes the lock again for
    every 64 KB, and a busy thread beside it (a start-up's imports) made a million-row read
    five times slower."""

    closed = False

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, size: int = -1) -> bytes | bytearray:
        if size < 0:
            raise ValueError("read the answer in sized parts")
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size:
            count = self._sock.recv_into(view[got:], size - got, socket.MSG_WAITALL)
            if not count:
                break  # the child is gone: a short read, which Arrow reports
            got += count
        return bytes(view[:got]) if got < size else buffer  # Arrow takes it without a copy

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        return None


def _encode(database: str, sql: str, params: list[Any]) -> bytes | None:
    """The request line for the child; None when the parameters are not JSON."""
    try:
        return (json.dumps({"database": database, "sql": sql, "params": params})
                + "\n").encode("utf-8")
    except (TypeError, ValueError, UnicodeError):
        return None


def _fetch(request: bytes, timeout: float,
           ahead: _Ahead | None = None) -> pa.Table | None:
    """Read ``request`` in an idle or new child (see :func:`read_query`); ``ahead``: the read
    started ahead this is, which records the child it uses (so it can be stopped)."""
    for _ in range(2):
        proc, reused = _take()
        if proc is None:
            return None
        if ahead is not None:
            with _lock:
                dropped = ahead.dropped
                ahead.proc = proc
            if dropped:
                _give_back(proc)
                return None
        table = _ask(proc, request, timeout)
        if table is not None:
            _give_back(proc)
            return table
        if not reused or (ahead is not None and ahead.dropped):
            return None
    return None


def read_query(database: str, sql: str, params: list[Any], timeout: float) -> pa.Table | None:
    """The rows of ``sql`` (positional ``?`` parameters) on the SQLite file ``database`` as an
    Arrow table; None when the child could not read them; QueryTimedOut past ``timeout`` s.
    A reused child that fails is replaced once by a new one (it may have just idled out).
    When the same read was started ahead (:func:`read_ahead`), its rows are taken."""
    request = _encode(database, sql, params)
    if request is None:
        return None
    ahead = _claim(request)
    if ahead is not None:
        ahead.done.wait()  # bounded: each read ahead has its own deadline
        if ahead.timed_out is not None:
            raise ahead.timed_out
        if ahead.table is not None:
            return ahead.table
    return _fetch(request, timeout)


@dataclass(eq=False)
class _Ahead:
    """A read started ahead: its request, the child reading it, and its answer once done."""

    request: bytes
    timeout: float
    started: float  # when it was asked for, then when its read began
    done: threading.Event = field(default_factory=threading.Event)
    proc: _Child | None = None
    running: bool = False
    table: pa.Table | None = None
    timed_out: QueryTimedOut | None = None
    dropped: bool = False

    def run(self) -> None:
        with _lock:
            skip, self.running, self.started = self.dropped, True, time.monotonic()
        try:
            if not skip:
                self.table = _fetch(self.request, self.timeout, self)
        except QueryTimedOut as exc:
            self.timed_out = exc
        except Exception:  # the read that takes it reads again, and reports what fails
            self.table = None
        finally:
            with _lock:
                self.running = False
            self.done.set()


# Reads started ahead, by request; those not yet begun, in order; the one thread reading them
# (one after another, in one child: the order the kinds run in).
_ahead: dict[bytes, _Ahead] = {}
_queue: deque[_Ahead] = deque()
_worker: threading.Thread | None = None


def _serve() -> None:
    global _worker
    while True:
        with _lock:
            if not _queue:
                _worker = None
                return
            ahead = _queue.popleft()
        ahead.run()


def read_ahead(database: str, sql: str, params: list[Any], timeout: float) -> bool:
    """Start reading ``sql`` on ``database`` ahead, for the :func:`read_query` of the same
    request to take; False when it was not started (not JSON, already started, or
    :data:`AHEAD_MAX` reads waiting). Reads started ahead run one after another, in the order
    they were started, in one child, each within its own ``timeout``."""
    global _worker
    request = _encode(database, sql, params)
    if request is None:
        return False
    ahead = _Ahead(request, timeout, time.monotonic())
    with _lock:
        if request in _ahead or len(_ahead) >= AHEAD_MAX:
            return False
        _ahead[request] = ahead
        _queue.append(ahead)
        if _worker is None:
            _worker = threading.Thread(target=_serve, name="icsync-read-ahead", daemon=True)
            _worker.start()
    return True


def _claim(request: bytes) -> _Ahead | None:
    """The read started ahead for ``request``, taken (once); None when there is none or it
    started more than :data:`AHEAD_SECONDS` ago (it is then dropped)."""
    with _lock:
        ahead = _ahead.pop(request, None)
    if ahead is None:
        return None
    if ahead.done.is_set() and time.monotonic() - ahead.started > AHEAD_SECONDS:
        _drop(ahead)
        return None
    return ahead


def _drop(ahead: _Ahead) -> None:
    """Stop a read started ahead: not begun, it never will; reading, its child is killed and
    its end awaited."""
    with _lock:
        ahead.dropped = True
        running = ahead.running
        proc = ahead.proc if running else None
    if proc is not None and proc.poll() is None:
        proc.kill()
    if running:
        ahead.done.wait(timeout=10)
    ahead.table = None


def discard_ahead() -> None:
    """Stop and drop every read started ahead that was not taken."""
    with _lock:
        pending = list(_ahead.values())
        _ahead.clear()
        _queue.clear()
    for ahead in pending:
        _drop(ahead)


atexit.register(discard_ahead)  # runs before close_idle (registered first)


def _exit_when_orphaned(parent: int) -> None:
    """Exit as soon as the parent process is gone (this process was handed to another; also
    when that happened before this process got this far)."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


class _NoPandas:
    """Import hook of the child: pyarrow looks for pandas on its first array (a quarter of a
    second), and this process never needs it."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ImportError("the SQLite reader runs without pandas")


def _request(buffer: bytearray, idle: float) -> dict[str, Any] | None:
    """The next request line; None when standard input closes or stays idle ``idle`` s."""
    while b"\n" not in buffer:
        ready, _, _ = select.select([0], [], [], idle)
        if not ready:
            return None
        chunk = os.read(0, 65_536)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    request: dict[str, Any] = json.loads(line)
    return request


def _answer(request: dict[str, Any], out: Any) -> None:
    """Stream the rows of ``request`` to ``out`` as Arrow IPC (raises on any failure)."""
    import adbc_driver_manager
    import adbc_driver_sqlite
    import pyarrow as pa

    with adbc_driver_sqlite.connect(request["database"]) as db, \
            adbc_driver_manager.AdbcConnection(db) as conn, \
            adbc_driver_manager.AdbcStatement(conn) as stmt:
        stmt.set_options(**{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
        stmt.set_sql_query(request["sql"])
        params = request["params"]
        if params:
            stmt.bind(pa.record_batch([pa.array([v]) for v in params],
                                      names=[f"p{i}" for i in range(len(params))]))
        handle, _ = stmt.execute_query()
        reader = pa.RecordBatchReader._import_from_c(handle.address)
        writer = pa.ipc.new_stream(out, reader.schema)
        for batch in reader:
            writer.write_batch(batch)
        writer.close()  # the end-of-stream marker: written only when every batch was


def main() -> int:
    """The child: answer requests until standard input closes or stays idle."""
    parent = int(os.environ.get(_PARENT) or os.getppid())
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    sys.meta_path.insert(0, _NoPandas)
    import adbc_driver_manager  # noqa: F401 (imported now, before the first request)
    import adbc_driver_sqlite  # noqa: F401

    idle = float(os.environ.get(_IDLE) or IDLE_SECONDS)
    out = binary_stdout()
    buffer = bytearray()
    while True:
        try:
            request = _request(buffer, idle)
        except (ValueError, OSError):
            return 3
        if request is None:
            return 0
        try:
            _answer(request, out)
        except Exception as exc:  # reported by the parent's SQLAlchemy read, not here
            print(f"{type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
            return 3
        out.write(_OK)
        out.flush()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # not sys.exit: the orphan watch thread still runs
