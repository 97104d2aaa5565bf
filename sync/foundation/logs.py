"""Structured logs: JSON in service mode, readable on a terminal, secrets always masked.

Every line passes :func:`redact`, which masks each configured secret wherever it appears (in the
event, in any bound value, in an exception's text). Bind ``run_id``, ``company``, ``job`` and
``kind`` with :func:`bound` (it needs no structlog: a run that logs nothing never loads it).

Repeated identical warnings and errors (the same event with the same values) are written once
per :data:`REPEAT_SECONDS`: the repeats in between are counted, and the next line written for
that event carries ``repeated=N``. A fault that fires thousands of times a second (a failing
accept(), a flood of bad requests) costs a few lines a minute, not megabytes.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Literal, TextIO, cast

from sync.foundation.secrets import REDACTOR

LogFormat = Literal["auto", "json", "console"]
REPEAT_SECONDS = 10.0
_LIMITED = frozenset({"warning", "error", "critical", "exception"})
#: The level of each logging method of a structlog logger.
_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                  "warn": logging.WARNING, "error": logging.ERROR,
                  "exception": logging.ERROR, "critical": logging.CRITICAL,
                  "fatal": logging.CRITICAL}
_BOUND: ContextVar[Mapping[str, Any]] = ContextVar(
    "icsync_log_values", default=MappingProxyType({}))


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Add ``values`` to every line logged in this context: this task, and the threads it
    starts through ``asyncio.to_thread`` (which copy the context). A line's own values win."""
    token = _BOUND.set(MappingProxyType({**_BOUND.get(), **values}))
    try:
        yield
    finally:
        _BOUND.reset(token)


def merge_bound(_logger: Any, _method: str,
                event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the values of :func:`bound` (the line's own values win)."""
    for key, value in _BOUND.get().items():
        event.setdefault(key, value)
    return event


def _identity(exc_info: Any) -> str:
    """What makes two exceptions 'the same' for the limiter: type and message, not traceback."""
    if exc_info is True:
        exc_info = sys.exc_info()
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    return f"{type(exc).__name__}: {exc}"[:500]


class RepeatLimiter:
    """structlog processor: identical warning/error lines at most once per ``interval``."""

    def __init__(self, interval: float = REPEAT_SECONDS, clock: Any = time.monotonic,
                 capacity: int = 4096) -> None:
        self.interval, self.clock, self.capacity = interval, clock, capacity
        self._seen: dict[str, list[float]] = {}  # key -> [quiet until, repeats held back]

    def __call__(self, _logger: Any, method: str,
                 event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if method not in _LIMITED:
            return event
        key = repr(sorted((k, _identity(v) if k == "exc_info" else repr(v)[:500])
                          for k, v in event.items()))
        now, entry = self.clock(), self._seen.get(key)
        if entry is not None and now < entry[0]:
            entry[1] += 1
            import structlog

            raise structlog.DropEvent
        if entry is not None and entry[1]:
            event["repeated"] = int(entry[1])
        if len(self._seen) >= self.capacity:
            self._seen = {k: v for k, v in self._seen.items() if v[0] > now}
        self._seen[key] = [now + self.interval, 0]
        return event


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask every known secret in every value of the event."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = REDACTOR(value)
        elif value is not None and not isinstance(value, int | float | bool):
            event[key] = REDACTOR(str(value))
    return event


class _CurrentStderr:
    """``sys.stderr`` as it is when each line is written, not when logs were configured: a
    replaced stream (a test's capture, a daemon's redirect) must never leave logging writing to
    a closed file, which would turn a log call into an error."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_pending: tuple[LogFormat, str, Any] | None = None


def configure(fmt: LogFormat = "auto", level: str = "info", stream: Any = None) -> None:
    """Set up structlog; ``auto`` is console on a TTY and JSON otherwise.

    Without ``stream`` (or with ``sys.stderr`` itself) lines go to the CURRENT standard error.
    Applied at once when structlog is loaded, else when the first line is logged (a command
    that logs nothing never loads it).
    """
    global _pending
    # Decided now, not when the configuration is applied (structlog may load much later,
    # when the stream given here, a test's capture say, is closed and replaced).
    _pending = (fmt, level, None if stream is sys.stderr else stream)
    if "structlog" in sys.modules:
        _apply()


def _apply() -> None:
    """Apply the configuration :func:`configure` was last given, if not applied yet."""
    global _pending
    if _pending is None:
        return
    fmt, level, stream = _pending
    _pending = None
    out = (cast(TextIO, _CurrentStderr()) if stream is None or stream is sys.stderr
           else stream)
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    import structlog

    renderer: Any = (structlog.processors.JSONRenderer() if use_json
                     else structlog.dev.ConsoleRenderer(colors=out.isatty()))
    structlog.configure(
        processors=[
            merge_bound,
            structlog.processors.add_log_level,
            RepeatLimiter(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def _ignore(*_args: Any, **_kwargs: Any) -> None:
    """A log call below the configured level, made before structlog is loaded."""


def _below_level(method: str) -> bool:
    """Whether a ``method`` line would be filtered out by the configuration not yet applied
    (so structlog need not be loaded for it)."""
    pending, wanted = _pending, _METHOD_LEVELS.get(method)
    if pending is None or wanted is None or "structlog" in sys.modules:
        return False
    return wanted < logging.getLevelNamesMapping()[pending[1].upper()]


class _Logger:
    """A structlog logger that imports structlog at its first use: most modules name their
    logger at import, and a command that logs nothing (``icsync status``, a quiet ``icsync
    sync``) should not pay a tenth of a second for it. Until then, a line below the configured
    level is dropped without loading structlog, as structlog would drop it."""

    __slots__ = ("_name", "_real")

    def __init__(self, name: str) -> None:
        self._name = name
        self._real: Any = None

    def __getattr__(self, attr: str) -> Any:
        real = self._real
        if real is None:
            if _below_level(attr):
                return _ignore
            import structlog

            _apply()
            real = self._real = structlog.get_logger(self._name)
        return getattr(real, attr)


def get_logger(name: str) -> Any:
    """A structlog logger named ``name`` (structlog loaded when it is first used)."""
    return _Logger(name)
