"""A SQLite query read as Arrow in a child process, so that the deadline can stop it.

ADBC's SQLite driver reads several times faster than row by row, but it cannot cancel a
statement, and a ``query`` can run forever (a recursive CTE, a join without its condition). So
the query runs in a child process of this module: it reads the rows through ADBC and streams
them to standard output as Arrow IPC record batches, and the parent kills it once
``timeout_seconds`` have passed (:class:`QueryTimedOut`). Killing a process stops SQLite for
certain and frees everything it held; the parent's read stays bounded whatever the query does.

The child also stops by itself when the parent goes away (its standard input closes), so a
killed daemon leaves no query running behind it. Any failure of the child other than the
deadline (no driver, a syntax error, a locked file, text that is not UTF-8, a column whose rows
disagree on their type) gives None: the caller then reads through SQLAlchemy, which reports the
error as every other read does.

Protocol: one JSON line on standard input (``database``, ``sql``, ``params``), then nothing
until the parent closes it; Arrow IPC stream on standard output; exit 0 when the stream is
complete, 3 on a failure (its first line on standard error, which the parent ignores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

# Rows per record batch: fewer, larger batches stream faster, and the driver infers each
# column's type from a whole first batch rather than its first 1,024 rows.
BATCH_ROWS = 65_536
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


class QueryTimedOut(Exception):
    """The child was killed at the deadline."""


def read_query(database: str, sql: str, params: list[Any], timeout: float) -> pa.Table | None:
    """The rows of ``sql`` (positional ``?`` parameters) on the SQLite file ``database`` as an
    Arrow table; None when the child could not read them; QueryTimedOut past ``timeout`` s."""
    try:
        request = json.dumps({"database": database, "sql": sql, "params": params}) + "\n"
    except (TypeError, ValueError):
        return None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "connectors.sqlite_child"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env)
    except OSError:
        return None
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, stop)
    timer.daemon = True
    timer.start()
    table: pa.Table | None = None
    try:
        if proc.stdin is None or proc.stdout is None:
            raise OSError("the child has no pipes")
        proc.stdin.write(request.encode("utf-8"))
        proc.stdin.flush()
        table = pa.ipc.open_stream(proc.stdout).read_all()
        proc.wait()  # standard input stays open until it exits: closing it would stop it
    except (OSError, pa.ArrowException):
        table = None
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    if timed_out.is_set():
        raise QueryTimedOut(f"interrupted after {timeout:g} s")
    return table if proc.returncode == 0 else None


def _exit_when_orphaned() -> None:
    """Exit as soon as standard input closes: the parent is gone or has given up."""
    while os.read(0, 65_536):
        pass
    os._exit(1)


class _NoPandas:
    """Import hook of the child: pyarrow looks for pandas on its first array (a quarter of a
    second), and this process never needs it."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ImportError("the SQLite reader runs without pandas")


def main() -> int:
    """The child: read the request, stream the rows as Arrow IPC."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 65_536)
        if not chunk:
            return 3
        line += chunk
    request = json.loads(line)
    threading.Thread(target=_exit_when_orphaned, daemon=True).start()
    sys.meta_path.insert(0, _NoPandas)
    import adbc_driver_manager
    import adbc_driver_sqlite

    out = sys.stdout.buffer
    try:
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
            with pa.ipc.new_stream(out, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
        out.flush()
    except Exception as exc:  # reported by the parent's SQLAlchemy read, not here
        print(f"{type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # not sys.exit: the orphan watch still blocks on standard input
