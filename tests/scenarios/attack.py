"""Tools of the attack scenarios (S24-S29): a descriptor-limited daemon, a half-open flood and
a prober that times /healthz while the daemon is under attack."""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.daemon.world import ROOT, child_env

HALF_HEADER = b"GET /healthz HTTP/1.1\r\nHost: attack\r\nX-Slow: "


def start_limited_daemon(config: Path, log: Path, *, nofile: int) -> subprocess.Popen[bytes]:
    """``icsync run`` as a child whose descriptor limit (soft and hard) is ``nofile``."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sync.cli", "run", "--config", str(config)], cwd=ROOT,
            env=child_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=limit)


@dataclass
class Flood:
    """Keeps ``count`` connections open, each having sent half a request header, reopening
    every one the server closes, until stopped."""

    host: str
    port: int
    count: int
    opened: int = 0
    most_held: int = 0  # the most connections open at once (as this side counts them)
    dropped_by_server: int = 0
    failed_connects: int = 0
    socks: list[socket.socket] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2)
            sock.sendall(HALF_HEADER)
            sock.setblocking(False)
        except OSError:
            self.failed_connects += 1
            return None
        self.opened += 1
        return sock

    def run(self) -> None:
        """Open them all, then reopen the ones the server closed, every second."""
        while len(self.socks) < self.count and not self.stop.is_set():
            sock = self._open()
            if sock is not None:
                self.socks.append(sock)
        self.most_held = max(self.most_held, len(self.socks))
        while not self.stop.is_set():
            self._replace_closed()
            self.most_held = max(self.most_held, len(self.socks))
            self.stop.wait(1.0)

    def _replace_closed(self) -> None:
        poller = select.poll()  # select() cannot take descriptors above 1023
        by_fd = {sock.fileno(): sock for sock in self.socks}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        readable = [by_fd[fd] for fd, _ in poller.poll(0)]
        for sock in readable:  # a half-open request gets no answer: readable means closed
            with contextlib.suppress(OSError):
                sock.recv(4096)
            sock.close()
            self.socks.remove(sock)
            self.dropped_by_server += 1
        while len(self.socks) < self.count and not self.stop.is_set():
            new = self._open()
            if new is None:
                break
            self.socks.append(new)

    def close(self) -> None:
        """Stop and close every connection."""
        self.stop.set()
        for sock in self.socks:
            sock.close()


def flood_for(host: str, port: int, count: int, seconds: float) -> dict[str, int]:
    """Run a :class:`Flood` for ``seconds``; its counts (the child process's work)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (count + 256, resource.getrlimit(
        resource.RLIMIT_NOFILE)[1]))
    flood = Flood(host, port, count)
    thread = threading.Thread(target=flood.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    # The most held at once: at the moment the attack ends the flood may be midway through
    # reopening what the daemon shed, so the count then depends on timing, not on the daemon.
    held = flood.most_held
    flood.close()
    thread.join(10)
    return {"opened": flood.opened, "held": held, "shed": flood.dropped_by_server,
            "failed_connects": flood.failed_connects}


def start_flood(host: str, port: int, count: int, seconds: float) -> subprocess.Popen[str]:
    """The flood as its own process (so it never slows this one); prints its counts as JSON."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.scenarios.attack", host, str(port), str(count),
         str(seconds)], cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, text=True)


if __name__ == "__main__":
    import json

    print(json.dumps(flood_for(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                               float(sys.argv[4]))))


@dataclass
class Prober:
    """Times ``GET url`` every ``every`` seconds on a fresh connection."""

    url: str
    every: float = 0.25
    times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Probe until stopped."""
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status = httpx.get(self.url, timeout=5, trust_env=False).status_code
                if status != 200:
                    self.failures.append(f"status {status}")
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
            self.times.append(time.monotonic() - started)
            self.stop.wait(self.every)

    @property
    def longest(self) -> float:
        """The slowest answer so far (seconds)."""
        return max(self.times, default=0.0)


@contextlib.contextmanager
def probing(url: str, every: float = 0.25) -> Iterator[Prober]:
    """A :class:`Prober` running in a thread for the duration of the block."""
    prober = Prober(url, every)
    thread = threading.Thread(target=prober.run, daemon=True)
    thread.start()
    try:
        yield prober
    finally:
        prober.stop.set()
        thread.join(10)
