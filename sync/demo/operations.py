"""The demo's operations chapter: the daemon with its console, and an alert at a local receiver.

It writes ``icsync-operations.toml`` (the tour's configuration plus ``[service] console = true``,
a 5-second reference schedule and ``[alerts]`` pointing at a JSON webhook receiver it serves on
loopback), starts ``icsync run`` as a real process, opens the console's URL, empties the ERP's
supplier table so that the guard blocks the next run, and shows the alert arriving at the
receiver; then it restores the suppliers and shows the "cleared" message.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from rich.markup import escape

from sync.demo import data as demo_data
from sync.demo.context import DemoContext
from sync.foundation.errors import IcsyncError

WAIT_SECONDS = 60.0


class Receiver:
    """A loopback HTTP endpoint that keeps the alert messages posted to it (apprise json://)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        keep = self._keep

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = min(int(self.headers.get("content-length") or 0), 1_000_000)
                keep(self.rfile.read(size))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/alerts"

    def _keep(self, body: bytes) -> None:
        try:
            doc = json.loads(body)
        except ValueError:
            return
        with self._lock:
            self.messages.append(doc)

    def titles(self) -> list[str]:
        """The titles received so far."""
        with self._lock:
            return [str(m.get("title", "")) for m in self.messages]

    @contextmanager
    def serving(self) -> Iterator[Receiver]:
        """Serve in a thread until the block ends."""
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def free_port() -> int:
    """A free loopback port for the daemon."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(ctx: DemoContext, receiver: Receiver, port: int) -> Path:
    """The chapter's configuration: the tour's, with the console and alerts switched on."""
    urls = ctx.workdir / "alert-urls"
    urls.write_text(f"# where icsync's alerts go, one apprise URL a line\n{receiver.url}\n",
                    encoding="utf-8")
    urls.chmod(0o600)
    text = ctx.config_path.read_text(encoding="utf-8").replace(
        'sink = "erp"\n', 'sink = "erp"\n'
        'schedules = { reference = "5s", readback = "0 2 * * *", transactions = "1h" }\n', 1)
    text += (f'\n[service]\nlisten = "127.0.0.1:{port}"\nconsole = true\n'
             "startup_jitter_seconds = 0\nshutdown_seconds = 10\n"
             f'\n[alerts]\nurls_file = "{urls}"\ncheck_seconds = 1\nretry_seconds = 2\n')
    path = ctx.workdir / "icsync-operations.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def wait_for_title(receiver: Receiver, *words: str,
                         seconds: float = WAIT_SECONDS) -> str:
    """The first received title containing every one of ``words``; IcsyncError after
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [t for t in receiver.titles() if all(w in t for w in words)]
        if found:
            return found[0]
        await asyncio.sleep(0.2)
    raise IcsyncError(f"no alert about {words!r} arrived within {seconds:.0f} s")


async def open_console(url: str) -> str:
    """Wait for the daemon, then fetch the console's first page; its title."""
    deadline = time.monotonic() + WAIT_SECONDS
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                page = await http.get(url)
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            start = page.text.find("<title>")
            return page.text[start + 7:page.text.find("</title>")] if start >= 0 else ""
    raise IcsyncError(f"the daemon's console did not answer at {url}")


async def stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the daemon and wait for it (SIGKILL after 20 s)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 20)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def chapter_operations(ctx: DemoContext) -> None:
    """The daemon's console, and an alert when the guard blocks a run (then its clear)."""
    receiver, port = Receiver(), free_port()
    path = write_config(ctx, receiver, port)
    console_url = f"http://127.0.0.1:{port}/"
    ctx.heading("8. Operations: the console and alerts", (
        "In production icsync runs as a daemon (icsync run). With \\[service] console = true it "
        "serves an operator console: run history with a 30-day chart per job, the quarantine "
        "with reasons, the ledger backlog and leases, in plain HTML (no external assets). With "
        "\\[alerts] it tells people when something goes wrong, by e-mail, chat or webhook "
        "(apprise URLs), once when it starts and once when it clears.\n"
        f"Here the alerts go to a webhook receiver on {receiver.url.replace('json', 'http')}.\n"
        f"Configuration for this chapter: {path}"))
    with receiver.serving():
        ctx.command("run", "--config", str(path))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ICSYNC_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sync.cli", "run", "--config", str(path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env)
        try:
            title = await open_console(console_url)
            ctx.console.print(f"The console answers at [bold]{console_url}[/] ({title!r}); "
                              "open it in a browser while the tour goes on.")
            moved = demo_data.empty_suppliers(ctx.erp)
            ctx.console.print(f"The ERP's supplier table comes back empty again ({moved} rows "
                              "gone). The next scheduled run is blocked by the guard, and...")
            try:
                started = await wait_for_title(receiver, "guard blocked")
                ctx.console.print(f"  alert received: [bold red]{escape(started)}[/]")
            finally:
                demo_data.restore_suppliers(ctx.erp)
            ctx.console.print("The suppliers are back; the next run goes ahead, and...")
            cleared = await wait_for_title(receiver, "cleared: ", "guard blocked")
            ctx.console.print(f"  alert received: [bold green]{escape(cleared)}[/]")
        finally:
            await stop(proc)
    ctx.console.print("Try `icsync alerts test --config FILE` to check your own channels.")
