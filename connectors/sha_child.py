"""SHA-256 of many short texts in a helper process, beside the work that builds them.

A million-row kind is digested in two steps that each take about a second on one core: Arrow
builds every row's canonical JSON text, then each text is hashed, one ``hashlib`` call per row.
In one process the two barely overlap: the hashing loop holds Python's lock, which each of
Arrow's calls needs to start. Here a child interpreter (standard library only) hashes on the
other core while this process builds the next batch's texts.

:func:`sha256_batches` takes the batches (Arrow string or large-string arrays, or None) as an
iterable and yields each one's hex digests, in order: exactly what hashing each cell's UTF-8
bytes in this process gives, which is what it does itself whenever the child cannot help (it
could not start, died, or answered short): the batches not yet answered, and every one after,
are then hashed here. A batch given as None is passed through as None (the caller digests it
another way). The iterable is consumed by a sender thread, so building a batch overlaps the
hashing of the one before (it builds at most :data:`_AHEAD` batches ahead).

Protocol: for each batch, 16 bytes (row count, data length: little-endian unsigned 64-bit),
then the row count + 1 offsets (little-endian signed 64-bit, the first 0), then the data, on
standard input; the child answers with each row's digest in 64 hex characters (ASCII) on
standard output. A batch past :data:`MAX_ROWS` rows or :data:`MAX_BYTES` bytes, or offsets that
do not rise within the data, end the child (the parent then hashes). Its standard input closing
(the parent is done, or gone) ends it too.

:func:`hash_locally` is the rules' own per-row hashing (``sync.reference.rules.keys``) for
string and large-string arrays alike: this layer cannot import the rules.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import itertools
import queue
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import IO, Any

from connectors.sqlite_child import binary_stdout, child_env

_HEADER = 16
_HEX = 64  # a digest's hex characters, the answer's bytes per row
MAX_ROWS = 1 << 22
MAX_BYTES = 1 << 31
_PIPE_BYTES = 1 << 20
_DONE = object()
_AHEAD = 2  # batches the sender may build ahead of the consumer


def _read_exact(stream: IO[bytes], size: int) -> bytearray | None:
    """``size`` bytes from ``stream``, or None at the end of the stream before them."""
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return None
        got += n
    return buf


def _offsets(joined: Any) -> tuple[Any, memoryview]:
    """The cell bounds of an Arrow string or large-string array (a numpy int64 array rebased
    to 0) and the data they index."""
    import numpy as np
    import pyarrow as pa

    width = np.int32 if pa.types.is_string(joined.type) else np.int64
    n = len(joined)
    _, offsets_buffer, data_buffer = joined.buffers()
    if not n or offsets_buffer is None:
        return np.zeros(n + 1, dtype=np.int64), memoryview(b"")
    bounds = np.frombuffer(offsets_buffer, dtype=width)[joined.offset:joined.offset + n + 1]
    first, last = int(bounds[0]), int(bounds[-1])
    data = memoryview(data_buffer or b"")[first:last]
    return bounds.astype(np.int64) - first, data


def hash_locally(joined: Any) -> list[str]:
    """Hex SHA-256 of each cell of an Arrow text array, in this process."""
    offsets, data = _offsets(joined)
    sha = hashlib.sha256
    return [sha(data[a:b]).hexdigest() for a, b in itertools.pairwise(offsets.tolist())]


def _widen(stream: IO[bytes]) -> None:
    """A larger pipe (Linux), so a batch of several MB crosses in a few wake-ups."""
    with contextlib.suppress(ImportError, AttributeError, OSError):
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _spawn() -> subprocess.Popen[bytes] | None:
    try:
        proc = subprocess.Popen([sys.executable, "-m", "connectors.sha_child"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=child_env())
    except OSError:
        return None
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            _widen(stream)
    return proc


def _send(proc: subprocess.Popen[bytes], batches: Iterator[Any], sent: queue.Queue[Any],
          stop: threading.Event) -> None:
    """The sender thread: each batch taken from ``batches`` is queued first (so the consumer
    has it whatever happens next), then written to the child while the child takes them."""
    stdin = proc.stdin
    assert stdin is not None
    writing = True
    try:
        for joined in batches:
            sent.put(joined)
            if stop.is_set():
                break
            if joined is None or not writing:
                continue
            offsets, data = _offsets(joined)
            try:
                stdin.write(len(joined).to_bytes(8, "little") + len(data).to_bytes(8, "little"))
                stdin.write(offsets.astype("<i8").tobytes())
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError):
                writing = False  # the child is gone: the consumer hashes what is queued
        sent.put(_DONE)
    except BaseException as exc:  # the consumer raises it in its own thread
        sent.put(exc)
    finally:
        with contextlib.suppress(OSError, ValueError):
            stdin.close()


def sha256_batches(batches: Iterable[Any]) -> Iterator[list[str] | None]:
    """Hex SHA-256 of every cell of each batch, a list per batch (None for a None batch),
    hashed by a helper process when one can run (see the module docstring)."""
    items = iter(batches)
    proc = _spawn()
    if proc is None:
        yield from (None if joined is None else hash_locally(joined) for joined in items)
        return
    stdout = proc.stdout
    assert stdout is not None
    sent: queue.Queue[Any] = queue.Queue(_AHEAD)
    stop = threading.Event()
    sender = threading.Thread(target=_send, args=(proc, items, sent, stop),
                              name="icsync-sha-sender", daemon=True)
    sender.start()
    helped = True
    try:
        while True:
            item = sent.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            if item is None:
                yield None
                continue
            raw = _read_exact(stdout, len(item) * _HEX) if helped else None
            if raw is None:
                if helped:  # the child is gone: every batch from this one is hashed here
                    helped = False
                    _end(proc)
                yield hash_locally(item)
                continue
            yield _hex_texts(raw)
    finally:
        stop.set()
        _end(proc)
        while sender.is_alive():  # it may wait to queue a batch: make room until it ends
            with contextlib.suppress(queue.Empty):
                sent.get_nowait()
            sender.join(0.01)
        stdout.close()


def _hex_texts(raw: bytearray) -> list[str]:
    """The 64-character hex digests end to end in ``raw`` as a list of str (built by Arrow,
    not by slicing a million times here)."""
    import numpy as np
    import pyarrow as pa

    n = len(raw) // _HEX
    offsets = np.arange(0, _HEX * (n + 1), _HEX, dtype=np.int64)
    cells = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets),
                                                         pa.py_buffer(raw)])
    texts: list[str] = cells.to_numpy(zero_copy_only=False).tolist()
    return texts


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The child's loop: answer each batch read from ``stdin`` until it closes (0), or stop
    at a batch that breaks the protocol's bounds (2)."""
    sha = hashlib.sha256
    while True:
        header = _read_exact(stdin, _HEADER)
        if header is None:
            return 0
        n, length = int.from_bytes(header[:8], "little"), int.from_bytes(header[8:], "little")
        if n > MAX_ROWS or length > MAX_BYTES:
            return 2
        packed = _read_exact(stdin, (n + 1) * 8)
        data = _read_exact(stdin, length)
        if packed is None or data is None:
            return 0
        offsets = array.array("q")
        offsets.frombytes(packed)
        if sys.byteorder != "little":
            offsets.byteswap()
        if offsets[0] != 0 or offsets[-1] != length or any(
                b < a for a, b in itertools.pairwise(offsets)):
            return 2
        view = memoryview(data)
        digests = b"".join([sha(view[a:b]).digest() for a, b in itertools.pairwise(offsets)])
        stdout.write(digests.hex().encode("ascii"))
        stdout.flush()


def main() -> int:
    """Entry point of the helper process."""
    try:
        return serve(sys.stdin.buffer, binary_stdout())
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    sys.exit(main())
