"""The hashing helper process: the digests hashlib gives, whatever the helper does."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from connectors import sha_child

TEXTS = ["", "A1", "caf\u00e9", "\U0001F600 emoji", 'q"\\', "x" * 5000]


def expected(batch: Any) -> list[str]:
    return [hashlib.sha256(t.encode()).hexdigest() for t in batch.to_pylist()]


def batches() -> list[Any]:
    """String and large-string arrays, one sliced mid-buffer, one empty, and a None."""
    big = pa.array([f"row {i} {TEXTS[i % len(TEXTS)]}" for i in range(3000)])
    return [pa.array(TEXTS), pa.array(TEXTS, type=pa.large_string()), big.slice(7, 2500),
            pa.array([], type=pa.string()), None, pa.array(TEXTS * 3).slice(5)]


class Spawned:
    """Records the helper processes started, so a test can check on them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        real = sha_child._spawn

        def spawn() -> subprocess.Popen[bytes] | None:
            proc = real()
            if proc is not None:
                self.procs.append(proc)
            return proc

        monkeypatch.setattr(sha_child, "_spawn", spawn)


def senders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "icsync-sha-sender"]


def test_the_helper_hashes_every_batch_as_hashlib_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cell's SHA-256, batch by batch and in order, a None batch passed through; hashed
    by the helper (hashing here is made to fail), which ends with the stream."""
    spawned = Spawned(monkeypatch)

    def not_here(joined: Any) -> list[str]:
        raise AssertionError("hashed in this process")

    monkeypatch.setattr(sha_child, "hash_locally", not_here)
    given = batches()
    got = list(sha_child.sha256_batches(given))
    assert got == [None if b is None else expected(b) for b in given]
    assert len(spawned.procs) == 1
    assert spawned.procs[0].returncode is not None
    assert not senders()


def test_without_a_helper_the_batches_are_hashed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that cannot start (no interpreter, no process left): the same digests."""
    monkeypatch.setattr(sha_child, "_spawn", lambda: None)
    given = batches()
    assert list(sha_child.sha256_batches(given)) == [None if b is None else expected(b)
                                                     for b in given]


def test_a_helper_killed_midway_leaves_nothing_unhashed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper is killed after its first answer: that batch and every one after are
    hashed here, none lost or doubled, and the stream ends cleanly."""
    spawned = Spawned(monkeypatch)
    given = [pa.array([f"{b}-{i}" for i in range(2000)]) for b in range(6)]
    stream = sha_child.sha256_batches(given)
    got = [next(stream)]
    spawned.procs[0].kill()
    got += list(stream)
    assert got == [expected(b) for b in given]
    assert not senders()


def test_a_helper_that_answers_short_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper whose answer is cut short (it exits at once): every batch hashed here."""
    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(["python3", "-c", "import sys; sys.stdout.write('x')"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    monkeypatch.setattr(sha_child, "_spawn", spawn)
    given = batches()
    assert list(sha_child.sha256_batches(given)) == [None if b is None else expected(b)
                                                     for b in given]


def test_a_stream_left_early_stops_its_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer stops after one batch: the helper is reaped, the sender thread ends,
    and the batches after it are not built."""
    spawned = Spawned(monkeypatch)
    built: list[int] = []

    def lazy() -> Iterator[Any]:
        for b in range(50):
            built.append(b)
            yield pa.array([f"{b}-{i}" for i in range(1000)])

    stream = sha_child.sha256_batches(lazy())
    next(stream)
    stream.close()
    assert spawned.procs[0].returncode is not None
    assert not senders()
    assert len(built) < 50


def test_a_failure_building_the_batches_reaches_the_consumer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An error raised while a batch is built is raised to the consumer, after the batches
    before it, and no helper is left running."""
    spawned = Spawned(monkeypatch)

    def failing() -> Iterator[Any]:
        yield pa.array(TEXTS)
        raise ValueError("cannot build")

    stream = sha_child.sha256_batches(failing())
    assert next(stream) == expected(pa.array(TEXTS))
    with pytest.raises(ValueError, match="cannot build"):
        next(stream)
    assert spawned.procs[0].returncode is not None
    assert not senders()


def frame(offsets: list[int], data: bytes, rows: int | None = None) -> bytes:
    n = len(offsets) - 1 if rows is None else rows
    return (n.to_bytes(8, "little") + len(data).to_bytes(8, "little")
            + b"".join(o.to_bytes(8, "little", signed=True) for o in offsets) + data)


@pytest.mark.parametrize(("request_bytes", "code", "answer"), [
    (frame([0, 2, 2, 5], b"abcde"), 0, (hashlib.sha256(b"ab").hexdigest()
     + hashlib.sha256(b"").hexdigest() + hashlib.sha256(b"cde").hexdigest()).encode()),
    (frame([0], b"", rows=sha_child.MAX_ROWS + 1), 2, b""),
    (frame([0, 3, 2, 5], b"abcde"), 2, b""),       # offsets that fall back
    (frame([0, 2, 9], b"abcde"), 2, b""),          # past the data
    (frame([0, 2, 5], b"abcde")[:20], 0, b""),     # cut short: the parent is gone
    (b"\x01", 0, b""),                              # a partial header
], ids=["good", "too-many-rows", "falling", "past-the-data", "cut-short", "partial-header"])
def test_the_helper_answers_only_well_formed_batches(request_bytes: bytes, code: int,
                                                     answer: bytes) -> None:
    """The helper's loop: a well-formed batch is answered; one past the bounds or with
    offsets that do not rise within the data ends it (2); a stream cut short ends it (0)."""
    out = io.BytesIO()
    assert sha_child.serve(io.BytesIO(request_bytes), out) == code
    assert out.getvalue() == answer


def test_a_helper_stopped_and_resumed_while_it_writes_loses_no_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper paused and resumed (job control, a debugger, a frozen cgroup) while writing an
    answer larger than the pipe, with standard output unbuffered by the environment (as the
    container image sets it): a write cut short by the stop is finished, not dropped, so every
    digest arrives in order and nothing stalls."""
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    spawned = Spawned(monkeypatch)
    given = [pa.array([f"{b}-{i}" for i in range(40_000)]) for b in range(12)]
    got: list[Any] = []
    done = threading.Event()

    def consume() -> None:
        for answer in sha_child.sha256_batches(given):
            got.append(answer)
            time.sleep(0.02)  # a slow reader: the helper's writes block on a full pipe
        done.set()

    def pause_and_resume() -> None:
        while not done.is_set():
            for proc in spawned.procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGSTOP)
                    time.sleep(0.001)
                    os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.002)

    consumer = threading.Thread(target=consume, daemon=True)
    pauser = threading.Thread(target=pause_and_resume, daemon=True)
    consumer.start()
    pauser.start()
    consumer.join(60)
    stalled = consumer.is_alive()
    done.set()
    for proc in spawned.procs:  # a stalled consumer ends (hashing here) once the helper dies
        if proc.poll() is None:
            proc.kill()
    consumer.join(60)
    pauser.join(10)
    assert not stalled, "the consumer waited for answers the helper never sent"
    assert got == [expected(b) for b in given]
