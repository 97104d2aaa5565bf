"""The one place terminal output is set up: rich consoles of a readable width.

On a terminal rich measures the window. Piped into a file or a CI log it would assume 80
columns and squeeze the plan and summary tables into ellipses, so there the width is 120 unless
``COLUMNS`` says otherwise.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from rich.console import Console

PIPED_WIDTH = 120


def make_console(*, file: TextIO | None = None, **options: Any) -> Console:
    """A rich Console for ``file`` (standard output by default) with a sensible piped width."""
    stream = file if file is not None else sys.stdout
    if "width" not in options and "COLUMNS" not in os.environ and not stream.isatty():
        options["width"] = PIPED_WIDTH
    return Console(file=file, **options)
