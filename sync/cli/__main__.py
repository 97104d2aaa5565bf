"""``python -m sync.cli``: the same entry point as the ``icsync`` script."""

from sync.cli import entry

entry()
