"""The shared runtime of one icsync process: configuration, state store, client and connectors.

Every job (reference sync, read-back, transaction poll, webhook) runs against a :class:`Runtime`
opened once by :func:`open_runtime`, which owns the IO resources and closes them all. Sources and
sinks are built on first use and cached, so a job that never touches the ERP never connects to it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from connectors.factory import build_sink, build_source, preload
from sync.foundation.config import Config
from sync.foundation.errors import ConfigError, IcsyncError
from sync.foundation.secrets import REDACTOR, Secret, read_secret_file
from sync.runtime.capabilities import Capabilities
from sync.state.peek import Peek
from sync.state.rows import LeaseLook

if TYPE_CHECKING:  # httpx and SQLAlchemy are imported when used, not by status or errors list
    import httpx

    from connectors.base import Source, TransactionSink
    from connectors.icompleat.client import CallRecord, IcompleatClient
    from sync.state.store import StateStore

T = TypeVar("T")


def make_holder() -> str:
    """This process's lease identity: ``hostname:pid:short-uuid``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def file_secret(path: Path | None, *, key: str) -> Secret | None:
    """The secret in ``path`` (registered with the redactor), or None when no file is set."""
    if path is None:
        return None
    secret = Secret(read_secret_file(path, key=key), origin=f"file {path}")
    REDACTOR.add(secret.reveal())
    return secret


@dataclass
class Runtime:
    """What a job needs; ``holder`` is this process's identity in leases."""

    config: Config
    store: StateStore
    client: IcompleatClient
    holder: str
    _sources: dict[str, Source] = field(default_factory=dict, repr=False)
    _sinks: dict[str, TransactionSink] = field(default_factory=dict, repr=False)
    _capabilities: Capabilities | None = field(default=None, repr=False)

    @property
    def capabilities(self) -> Capabilities:
        """What this tenant's iCompleat supports, as learned and remembered in the state DB."""
        if self._capabilities is None:
            ic = self.config.settings.icompleat
            self._capabilities = Capabilities(self.store, ic.tenant_id,
                                              reprobe_seconds=ic.reprobe_seconds)
        return self._capabilities

    def source(self, name: str) -> Source:
        """The source configured as ``[sources.<name>]``, built on first use."""
        if name not in self._sources:
            self._sources[name] = build_source(name, _configured(
                self.config.settings.sources, "sources", name))
        return self._sources[name]

    def sink(self, name: str) -> TransactionSink:
        """The sink configured as ``[sinks.<name>]``, built on first use."""
        if name not in self._sinks:
            self._sinks[name] = build_sink(name, _configured(
                self.config.settings.sinks, "sinks", name))
        return self._sinks[name]

    def close_connectors(self) -> None:
        """Close every source and sink built so far (errors while closing are ignored)."""
        connectors: list[Source | TransactionSink] = [*self._sources.values(),
                                                      *self._sinks.values()]
        for conn in connectors:
            with suppress(Exception):
                conn.close()
        self._sources.clear()
        self._sinks.clear()


def open_store(config: Config, *, check: bool = True, migrate: bool = True) -> StateStore:
    """Open (and migrate) the configured state database; blocking. ``check=False``: no
    integrity check (see :meth:`StateStore.open`), for commands that only read;
    ``migrate=False``: StateError unless the schema is already this version's."""
    from sync.state.store import StateStore

    state = config.settings.state
    return StateStore.open(state.url,
                           password=file_secret(state.password_file, key="state.password_file"),
                           timeout=state.timeout_seconds, check=check, migrate=migrate)


def open_reader(config: Config) -> Peek | StateStore:
    """The configured state database for commands that only read it: a :class:`Peek` (no
    SQLAlchemy) when it is a SQLite file at this version's schema, else the full store opened
    as :func:`open_store` with ``check=False`` (which creates or migrates it as usual). Both
    are context managers answering :class:`~sync.state.peek.StateReader`."""
    state = config.settings.state
    peek = Peek.open(state.url, timeout=state.timeout_seconds)
    return peek if peek is not None else open_store(config, check=False)


def look_lease(config: Config, name: str) -> LeaseLook | None:
    """Lease ``name`` as it is now if no one holds it (:class:`LeaseLook`); None while it is
    held, and when the state database cannot tell (not created or migrated yet, unreachable,
    damaged: the run's own opening reports that). Blocking."""
    state = config.settings.state
    try:
        peek = Peek.open(state.url, timeout=state.timeout_seconds)
        if peek is not None:  # a SQLite file at this schema: no engine to build first
            with peek:
                return peek.look_lease(name)
        with open_store(config, check=False, migrate=False) as store:
            return store.look_lease(name)
    except (IcsyncError, OSError):
        return None


@asynccontextmanager
async def open_runtime(
    config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
    on_call: Callable[[CallRecord], None] | None = None,
) -> AsyncIterator[Runtime]:
    """Open the state DB (off the loop) and the client; close everything on the way out."""
    from connectors.icompleat.client import IcompleatClient

    client = IcompleatClient.from_config(config, transport=transport, on_call=on_call)
    try:
        store = await asyncio.to_thread(open_store, config)
    except BaseException:
        await client.aclose()
        raise
    runtime = Runtime(config=config, store=store, client=client, holder=make_holder())
    try:
        # The connectors' first imports happen here, off the loop, not under a job's lease.
        await asyncio.to_thread(preload, config.settings)
        async with client:
            yield runtime
    finally:
        await asyncio.to_thread(runtime.close_connectors)
        await asyncio.to_thread(store.close)


def _configured(tables: Mapping[str, T], section: str, name: str) -> T:
    """``tables[name]``, or ConfigError naming the missing ``[section.name]`` table."""
    if name not in tables:
        raise ConfigError(f"no [{section}.{name}] table", key=f"{section}.{name}")
    return tables[name]
