"""``icsync demo``: a guided tour on a local sandbox, a sample ERP and a real configuration.

Everything is written under a temporary directory (or ``--workdir``); the chapters live in
:mod:`sync.demo.tour`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from sync.console.terminal import make_console
from sync.foundation.errors import ExitCode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``icsync demo``."""
    parser.add_argument("--workdir", type=Path,
                        help="write everything here (default: a new temporary directory)")
    parser.add_argument("--fast", action="store_true",
                        help="a smaller sample ERP (for tests)")


def run(args: argparse.Namespace) -> int:
    """Run the tour; 0 when every chapter behaved as the tour says."""
    from connectors.icompleat.sandbox import SandboxServer
    from sync.demo.context import COMPANY_ID, TENANT_ID, DemoContext
    from sync.demo.tour import as_told, prepare, tour
    from sync.foundation.config import load_config
    from sync.foundation.files import private_dir
    from sync.foundation.logs import configure

    configure("console", "warning")
    console = make_console()
    started = time.monotonic()
    with ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="icsync-demo-")))
        else:
            workdir = args.workdir.resolve()
            private_dir(workdir)
        key = secrets.token_urlsafe(24)
        sandbox = stack.enter_context(
            SandboxServer(tenant_id=TENANT_ID, company_ids=[COMPANY_ID], api_key=key))
        erp, path = prepare(workdir, sandbox.url, key, args.fast)
        ctx = DemoContext(workdir, console, args.fast, sandbox, erp, path, load_config(path),
                          kept=args.workdir is not None)
        asyncio.run(tour(ctx))
    console.print(f"[dim]The tour took {time.monotonic() - started:.1f} s.[/]")
    return int(ExitCode.OK if as_told(ctx) else ExitCode.FAILED)


