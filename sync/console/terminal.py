"""The one place terminal output is set up: rich consoles of a readable width.

A command's ``--json`` document is written by :func:`json_document`.

On a terminal rich measures the window. Piped into a file or a CI log it would assume 80
columns and squeeze the plan and summary tables into ellipses, so there the width is 120 unless
``COLUMNS`` says otherwise.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson

if TYPE_CHECKING:  # rich loads with the first console: a --json document needs none
    from rich.console import Console

PIPED_WIDTH = 120


@functools.cache
def _console_class() -> type[Console]:
    from rich.console import Console

    class _Console(Console):
        """A rich Console whose reader going away (``icsync status | head``) is the plain
        BrokenPipeError every command's output gives, so the CLI answers it the one way (exit
        141, no traceback) instead of rich's own exit 1."""

        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return _Console


def cell(value: Any) -> str:
    """A value as a table cell: blank for None, a time as ``YYYY-MM-DD HH:MM:SS`` UTC (the
    whole value, to the microsecond, is in ``--json``), anything else as its text."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo is not None else value
        return f"{utc:%Y-%m-%d %H:%M:%S}"
    return str(value)


def make_console(*, file: TextIO | None = None, **options: Any) -> Console:
    """A rich Console for ``file`` (standard output by default) with a sensible piped width."""
    stream = file if file is not None else sys.stdout
    if "width" not in options and "COLUMNS" not in os.environ and not stream.isatty():
        options["width"] = PIPED_WIDTH
    return _console_class()(file=file, **options)


_JSON_OPTIONS = (orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                 | orjson.OPT_PASSTHROUGH_DATACLASS)


def json_document(doc: Any) -> str:
    """``doc`` as indented JSON text, as ``json.dumps(doc, indent=2, default=str,
    ensure_ascii=False)`` writes it, twenty times faster (a dry run's plan lists every key:
    a million lines); a value orjson refuses (an integer past 64 bits) takes the slow road."""
    try:
        return orjson.dumps(doc, default=str, option=_JSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(doc, indent=2, default=str, ensure_ascii=False)
