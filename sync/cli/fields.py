"""``icsync fields [KIND] [--markdown]``: the fields of every kind (or one), from the registry.

Name, type, length limit, whether required, whether sent to iCompleat or only validated, and
where ERP data usually goes. ``--markdown`` prints docs/fields.md (the same data).
"""

from __future__ import annotations

import argparse

from sync.console.terminal import make_console
from sync.foundation.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("kind", nargs="?", help="one kind (default: every kind)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the Markdown reference page (docs/fields.md)")


def run(args: argparse.Namespace) -> int:
    """Print the reference; exit 2 for an unknown kind."""
    from sync.console.fields import kinds_of, markdown, table

    try:
        kinds = kinds_of(args.kind)
    except ValueError as exc:
        raise ConfigError(str(exc), key="KIND") from None
    if args.markdown:
        print(markdown(), end="")
        return 0
    console = make_console(highlight=False)
    for kind in kinds:
        console.print(table(kind))
    return 0
