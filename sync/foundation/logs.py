"""Structured logs: JSON in service mode, readable on a terminal, secrets always masked.

Every line passes :func:`redact`, which masks each configured secret wherever it appears (in the
event, in any bound value, in an exception's text). Bind ``run_id``, ``company``, ``job`` and
``kind`` with ``structlog.contextvars.bound_contextvars``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO, cast

import structlog

from sync.foundation.secrets import REDACTOR

LogFormat = Literal["auto", "json", "console"]


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


def configure(fmt: LogFormat = "auto", level: str = "info", stream: Any = None) -> None:
    """Set up structlog and stdlib logging; ``auto`` is console on a TTY and JSON otherwise.

    Without ``stream`` (or with ``sys.stderr`` itself) lines go to the CURRENT standard error.
    """
    out = (cast(TextIO, _CurrentStderr()) if stream is None or stream is sys.stderr
           else stream)
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (structlog.processors.JSONRenderer() if use_json
                     else structlog.dev.ConsoleRenderer(colors=out.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
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


def get_logger(name: str) -> Any:
    """A structlog logger named ``name``."""
    return structlog.get_logger(name)
