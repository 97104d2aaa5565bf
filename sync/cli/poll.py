"""``icsync poll``: one pass posting approved transactions into the ERP, for every company or one.

Each company's pass runs under the lease ``<company>:transactions`` (the daemon's job takes the
same one), renewed while it runs; a lease left by a killed process is taken over once it expires.
Prints a summary table (or one JSON document with ``--json``) and exits with the worst code:
0 done, 1 unexpected, 2 configuration, 4 something quarantined or failed, 5 credentials refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sync.console.terminal import json_document, make_console
from sync.foundation.config import load_config
from sync.foundation.logs import configure
from sync.foundation.outcomes import worst_exit
from sync.foundation.secrets import REDACTOR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE [--company NAME] [--json]``."""
    parser.add_argument("--config", type=Path, required=True, help="the icsync TOML file")
    parser.add_argument("--company", help="poll only this configured company")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--sweep", action="store_true",
                        help="read every approved list in full, not from its tail cursor")


def run(args: argparse.Namespace) -> int:
    """Poll, print the summary, return the worst exit code."""
    from connectors.icompleat.tls import prepare

    prepare()  # the certificate authorities load on the other core meanwhile
    from sync.console.poll import render_poll  # the engine and the state DB: not for --help
    from sync.transactions.run import poll_all, posting_companies

    config = load_config(args.config)
    service = config.settings.service
    configure(service.log_format, service.log_level, stream=sys.stderr)
    companies = ([config.settings.company(args.company)] if args.company
                 else posting_companies(config))
    results = asyncio.run(poll_all(config, companies, sweep=args.sweep))
    code = worst_exit(r.exit_code for r in results)
    if args.json:
        doc = {"companies": [r.to_dict() for r in results], "exit_code": int(code)}
        print(REDACTOR(json_document(doc)))
    else:
        render_poll(results, make_console(highlight=False))
    return int(code)
