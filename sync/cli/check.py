"""``icsync check --config FILE``: is everything in place to run? Each step reported ok or FAIL.

Steps, in order (a failed step does not hide the later ones, except that nothing runs without a
valid configuration): the configuration; the state database (opened and migrated); every
source's kinds for every company that uses it (read, rows counted, nothing printed from them);
the kind's mapping over what was read (every mapped column present, the where filter
readable; a note for fields that are validated but never sent); every sink (a look-up that
writes nothing); iCompleat's tenant and companies endpoints, and that each configured company
id is one of the tenant's (GUIDs compared ignoring case); the capabilities learned so far
(calls this tenant answered 404/405). Nothing is written anywhere but the state database's
schema. The exit code is the worst step's: 2 configuration (a bad query, a mapped column the
source lacks, a file that does not decode), 5 credentials rejected, 1 anything else that
failed, 0 all ok.

``--live`` then probes every route the configuration uses (GETs only; ``--probe-writes`` with
``--test-company NAME`` adds write calls that change nothing) and prints a table of route,
status, latency and verdict; ``--json`` prints the probes as one JSON document instead (the
steps go to standard error). See :mod:`sync.cli.live`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("--config", type=Path, required=True, help="the TOML configuration file")
    parser.add_argument("--live", action="store_true",
                        help="probe every route the configuration uses (GETs only)")
    parser.add_argument("--probe-writes", action="store_true",
                        help="with --live: also probe write calls that change nothing, in the "
                             "--test-company")
    parser.add_argument("--test-company", help="the configured company write probes may use")
    parser.add_argument("--json", action="store_true",
                        help="with --live: print the probes as JSON (steps on stderr)")


def run(args: argparse.Namespace) -> int:
    """Check every step; the worst step's exit code."""
    from sync.cli.checks import run_checks  # the steps import pandas and the HTTP client

    return run_checks(args)
