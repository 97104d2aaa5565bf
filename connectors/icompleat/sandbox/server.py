"""Serving the sandbox: uvicorn in a background thread, for tests and for the CLI alike.

:class:`BackgroundServer` runs any ASGI app under uvicorn on a free loopback port in a daemon
thread (tests also use it for webhook receivers). :class:`SandboxServer` assembles the sandbox
(state, pusher, API and admin apps); the CLI's ``serve_forever`` waits in the main thread for
SIGINT or SIGTERM and then stops the server cleanly (exit status 0). Clients that die mid-request (a
SIGKILLed test process) only close their own connection; the server carries on.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from connectors.icompleat.routes import ROUTES, RouteTable
from connectors.icompleat.sandbox.admin import build_admin
from connectors.icompleat.sandbox.app import SandboxApp
from connectors.icompleat.sandbox.core import DEFAULT_TOKEN_TTL
from connectors.icompleat.sandbox.persist import MemoryStore, SqliteStore, Store
from connectors.icompleat.sandbox.state import SandboxState, TenantSpec, WebhookSpec
from connectors.icompleat.sandbox.webhooks import DEFAULT_TIMEOUT, Pusher
from sync.foundation.secrets import Secret

LOOPBACK = "127.0.0.1"


def _secret(value: str | Secret, origin: str) -> Secret:
    return value if isinstance(value, Secret) else Secret(value, origin=origin)


class BackgroundServer:
    """An ASGI app under uvicorn on ``host`` (a free port unless one is given)."""

    def __init__(self, app: ASGIApp, host: str = LOOPBACK, port: int = 0,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._on_stop = on_stop
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` once bound."""
        return f"http://{self.host}:{self.port}"

    def bind(self) -> str:
        """Listen now (the port is known and clients may connect at once); the URL."""
        if self._socket is None:
            # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
            # without it every answer (headers, then body) waits ~40 ms for a delayed ACK.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self.port))
                sock.listen(128)  # connections queue from now on, before uvicorn accepts
            except OSError:
                sock.close()
                raise
            self._socket = sock
            self.port = sock.getsockname()[1]
        return self.url

    def _uvicorn(self) -> uvicorn.Server:
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, http="h11",
                                ws="none", log_config=None, lifespan="on",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        return self._server

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Serve in a daemon thread; returns once the server accepts connections."""
        self.bind()
        server = self._uvicorn()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._socket]},
                                        name=f"asgi-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.002)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread (forcing the exit after ``timeout``/2)."""
        if self._on_stop is not None:
            self._on_stop()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout / 2)
            self._server.force_exit = True
            self._thread.join(timeout / 2)
        if self._socket is not None:
            self._socket.close()
        self._socket, self._server, self._thread = None, None, None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SandboxServer:
    """A sandbox of the iCompleat API for one tenant (more through ``state.configure``)."""

    def __init__(self, *, tenant_id: str, company_ids: Sequence[str] | str,
                 api_key: str | Secret, db: Path | str | None = None, host: str = LOOPBACK,
                 port: int = 0, token_ttl: float = DEFAULT_TOKEN_TTL,
                 webhook_url: str | None = None, webhook_token: str | Secret | None = None,
                 webhook_timeout: float = DEFAULT_TIMEOUT, routes: RouteTable = ROUTES,
                 seed: int | None = None, tenant_name: str | None = None) -> None:
        self.db = Path(db) if db is not None else None
        store: Store = SqliteStore(self.db) if self.db is not None else MemoryStore()
        self.state = SandboxState(store=store, token_ttl=token_ttl, seed=seed)
        companies = (company_ids,) if isinstance(company_ids, str) else tuple(company_ids)
        self.state.configure(TenantSpec(tenant_id, _secret(api_key, "sandbox"), companies,
                                        tenant_name))
        if webhook_url:
            token = _secret(webhook_token or "", "sandbox webhook token")
            self.state.configure_webhook(WebhookSpec(tenant_id, webhook_url, token))
        self.pusher = Pusher(self.state, routes, webhook_timeout)
        self.app = SandboxApp(self.state, self.pusher,
                              build_admin(self.state, self.pusher, routes), routes)
        self._server = BackgroundServer(self.app, host, port, on_stop=self._stopping)

    def _stopping(self) -> None:
        self.app.stopping = True  # ends hung requests

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        return self._server.url

    @property
    def port(self) -> int:
        """The port served (known once started or bound)."""
        return self._server.port

    def bind(self) -> str:
        """Open the listening socket (the CLI prints the URL before serving); the URL."""
        return self._server.bind()

    def start(self) -> SandboxServer:
        """Serve in a background thread."""
        self.app.stopping = False
        self._server.start()
        return self

    def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM (call from the main thread), then stop cleanly."""
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not stop.wait(1.0):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def stop(self) -> None:
        """Stop serving and close the database."""
        self._server.stop()
        self.state.store.close()

    def reset(self) -> None:
        """Back to the configured tenants: no data, faults, log, tray, deliveries or hangs."""
        self.state.reset()
        self.pusher.reset()

    def wait_for_pushes(self, timeout: float = 10.0) -> bool:
        """Block until no webhook push is running; False on timeout."""
        return self.pusher.wait_idle(timeout)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxServer(url={self.url!r}, db={self.db})"


def serve(announce: Callable[[str], None] | None = None, **options: Any) -> None:
    """Build a :class:`SandboxServer` from ``options``, listen, call ``announce(url)``, then
    serve until SIGINT or SIGTERM (the blocking entry of ``icsync sandbox``). OSError when the
    address cannot be bound."""
    server = SandboxServer(**options)
    url = server.bind()
    if announce is not None:
        announce(url)
    server.serve_forever()
