"""Build sources and sinks from their configuration tables.

``build_source`` / ``build_sink`` connect to nothing: engines and files are opened on first use,
so a bad configuration fails here (ConfigError naming the key) and an unreachable ERP fails
later, on the read or post that needs it (SourceError / SinkError). A database password comes
from the caller, else from ``password_file``; it is registered with the log redactor.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sync.foundation.config import (
    CompanyConfig,
    FilesSinkConfig,
    FilesSourceConfig,
    MemorySinkConfig,
    MemorySourceConfig,
    Settings,
    SinkConfig,
    SourceConfig,
    SqlSinkConfig,
    SqlSourceConfig,
)
from sync.foundation.errors import ConfigError
from sync.foundation.secrets import REDACTOR, Secret, read_secret_file

if TYPE_CHECKING:
    from connectors.base import Source, TransactionSink

# Each connector module is imported by the branch that builds it: the SQL and file connectors
# bring pandas, pyarrow and their drivers, which commands that never read a source (status,
# errors, the daemon until its first job) must not pay for at start.


_MODULES: tuple[tuple[type, str], ...] = (
    (SqlSourceConfig, "connectors.sql"), (FilesSourceConfig, "connectors.files"),
    (MemorySourceConfig, "connectors.memory"), (SqlSinkConfig, "connectors.sql_sink"),
    (FilesSinkConfig, "connectors.files"), (MemorySinkConfig, "connectors.memory"),
)


def preload(settings: Settings) -> list[str]:
    """Import the connector modules the configuration uses; the names imported. Blocking:
    call it off the event loop before a job holds a lease, so a first import (pandas, pyarrow,
    drivers: a second or more) never stalls the loop while the lease must be renewed. A SQLite
    query's reader process is started here too, ready for the first read."""
    configs = [*settings.sources.values(), *settings.sinks.values()]
    names = sorted({module for cls, module in _MODULES if any(isinstance(c, cls) for c in configs)})
    for module in names:
        importlib.import_module(module)
    for config in settings.sources.values():
        if isinstance(config, SqlSourceConfig):
            from connectors.sql import warm

            warm(config)
    return names


def read_ahead(settings: Settings, company: CompanyConfig, kinds: Sequence[str], *,
               gate: Callable[[], bool] | None = None) -> list[str]:
    """Start reading ``kinds`` of ``company`` from its source ahead of the run, where the
    source can (a SQLite query: :mod:`connectors.sql_ahead`); the kinds started. ``gate``
    (optional) is asked once something can be read ahead, before it starts: nothing starts
    when it says no. Imports no more than SQLAlchemy, and never raises: what is not read
    ahead is read when its kind runs.
    """
    config = settings.sources.get(str(company.source))
    if not isinstance(config, SqlSourceConfig):
        return []
    from connectors.base import CompanyRef
    from connectors.sql_ahead import read_ahead as sql_read_ahead

    return sql_read_ahead(config, kinds, CompanyRef.of(company), gate=gate)


def build_source(name: str, cfg: SourceConfig, *, password: Secret | None = None) -> Source:
    """The source configured as ``[sources.<name>]``."""
    if isinstance(cfg, SqlSourceConfig):
        from connectors.sql import SqlSource

        secret = password or _password(cfg.password_file, f"sources.{name}.password_file")
        return SqlSource(name, cfg, password=secret)
    if isinstance(cfg, FilesSourceConfig):
        from connectors.files import FilesSource

        return FilesSource(name, cfg)
    if isinstance(cfg, MemorySourceConfig):
        from connectors.memory import MemorySource

        return MemorySource.from_config(name, cfg)
    raise ConfigError(f"unknown source type {type(cfg).__name__}", key=f"sources.{name}.type")


def build_sink(name: str, cfg: SinkConfig, *, password: Secret | None = None) -> TransactionSink:
    """The sink configured as ``[sinks.<name>]``."""
    if isinstance(cfg, SqlSinkConfig):
        from connectors.sql_sink import SqlSink

        secret = password or _password(cfg.password_file, f"sinks.{name}.password_file")
        return SqlSink(name, cfg, password=secret)
    if isinstance(cfg, FilesSinkConfig):
        from connectors.files import FilesSink

        return FilesSink(name, cfg)
    if isinstance(cfg, MemorySinkConfig):
        from connectors.memory import MemorySink

        return MemorySink(name, journal_prefix=cfg.journal_prefix,
                          required_fields=cfg.required_fields)
    raise ConfigError(f"unknown sink type {type(cfg).__name__}", key=f"sinks.{name}.type")


def build_sources(settings: Settings) -> dict[str, Source]:
    """Every configured source by name (ConfigError on the first bad one)."""
    return {name: build_source(name, cfg) for name, cfg in settings.sources.items()}


def build_sinks(settings: Settings) -> dict[str, TransactionSink]:
    """Every configured sink by name (ConfigError on the first bad one)."""
    return {name: build_sink(name, cfg) for name, cfg in settings.sinks.items()}


def _password(path: Path | None, key: str) -> Secret | None:
    if path is None:
        return None
    value = read_secret_file(path, key=key)
    REDACTOR.add(value)
    return Secret(value, origin=f"file {path}")
