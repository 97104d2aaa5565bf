"""The ``icsync`` command: one table of sub-commands, each in its own module.

Every command module under ``sync.cli`` exposes ``add_arguments(parser)`` and
``run(args) -> int``. Errors of the project's tree become their exit code and one clear line;
anything else is exit 1 with the traceback in the log.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Sequence
from typing import Protocol, cast

from sync.foundation.errors import ExitCode, IcsyncError
from sync.foundation.logs import configure
from sync.foundation.secrets import REDACTOR

# httpx loads its own command-line client (click, pygments and rich's syntax highlighting,
# 50-80 ms) whenever click is installed, which uvicorn brings. icsync never runs that client:
# marking it absent makes ``import httpx`` take its own fallback for a missing client.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None: "not there"

# name -> (module under sync.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "guided tour: sandbox, sample ERP, sync, changes, guard, transactions"),
    "sandbox": ("sandbox", "serve a local iCompleat sandbox of the API contract"),
    "sync": ("sync", "sync reference data (plan with --dry-run; --full reads back first)"),
    "poll": ("poll", "post approved transactions into the ERP, exactly once"),
    "run": ("run", "run the daemon: schedules, webhook receiver, health and metrics"),
    "status": ("status", "last runs, quarantine, ledger backlog and leases"),
    "check": ("check", "validate configuration, state DB, sources and iCompleat access"),
    "errors": ("errors", "list, retry or resolve quarantined records and transactions"),
    "alerts": ("alerts", "send a test alert to every channel, or list active alert conditions"),
    "fields": ("fields", "the fields of every kind: types, limits, what is sent (docs/fields.md)"),
}


class CommandModule(Protocol):
    """What a module of sync.cli provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's options."""

    def run(self, args: argparse.Namespace) -> int:
        """Run the command; return its exit code."""


# The shell's codes for a process ended by SIGINT and by SIGPIPE (128 + the signal's number).
INTERRUPTED = 130
OUTPUT_CLOSED = 141


def _load(module: str) -> CommandModule | None:
    try:
        return cast(CommandModule, importlib.import_module(f"sync.cli.{module}"))
    except ModuleNotFoundError as exc:
        if exc.name == f"sync.cli.{module}":
            return None
        raise


def _chosen(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is a command), if any."""
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(
    argv: Sequence[str] = (),
) -> tuple[argparse.ArgumentParser, dict[str, CommandModule]]:
    """The argument parser; only the command named in ``argv`` is imported (a fast start)."""
    parser = argparse.ArgumentParser(
        prog="icsync", description="Keeps iCompleat in step with your ERP.",
        epilog="exit codes (every command): 0 done, 1 unexpected failure, 2 bad configuration "
               "or usage, 3 blocked by a safety guard, 4 partial (rows rejected or calls "
               "failed), 5 iCompleat rejected the credentials, 130 interrupted (Ctrl-C), 141 "
               "the output's reader went away (icsync status | head)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen(argv)
    loaded: dict[str, CommandModule] = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = _load(module_name) if name == chosen else None
        if name == chosen and module is None:
            continue
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if module is not None:
            module.add_arguments(sub)
            loaded[name] = module
    return parser, loaded


def _parse(parser: argparse.ArgumentParser, commands: dict[str, CommandModule],
           words: list[str]) -> argparse.Namespace:
    """``words`` parsed. A command whose module names a TRAILING list (``errors``' ids) also
    takes the words after its options there (``errors retry --config F 3 4``), which argparse
    alone leaves unrecognised; anything else unrecognised is the usual usage error."""
    args, extra = parser.parse_known_args(words)
    trailing = getattr(commands.get(args.command or ""), "TRAILING", None)
    if extra and trailing is not None and not any(w.startswith("-") for w in extra):
        getattr(args, trailing).extend(extra)
        return args
    return parser.parse_args(words) if extra else args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``icsync`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parser(words)
    args = _parse(parser, commands, words)
    if args.command is None or args.command not in commands:
        parser.print_help()
        return int(ExitCode.CONFIG)
    # Until a command configures logs from its settings: redacted, warnings up, on stderr.
    configure("auto", "warning", stream=sys.stderr)
    try:
        return commands[args.command].run(args)
    except IcsyncError as exc:
        print(f"icsync {args.command}: {REDACTOR(str(exc))}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:  # the reader went away (``icsync status | head``): no traceback
        _discard_stdout()
        return OUTPUT_CLOSED


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so that no later flush fails again."""
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def entry() -> None:
    """The console script: :func:`main`, then exit without tearing the interpreter down.

    The exit handlers still run (logs flushed, executors joined, temporary files removed) and
    the output is flushed; what is skipped is freeing every object one at a time and the final
    garbage collections, most of a second after a million-row run. With a thread still running
    (none should be) the interpreter shuts down as usual, which waits for it.
    """
    # Arrow's allocator (mimalloc) gives freed memory back to the system at once instead of
    # keeping it a while for its own reuse: a million-row run frees hundreds of MB of Arrow
    # buffers between stages, which Python's objects can then use (peak RSS of a 1M-row
    # compare 1.38-1.49 -> 1.30-1.35 GB, same speed). Read when Arrow is first loaded; an
    # operator's own setting wins.
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
    code = main()
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: unread is gone anyway
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
