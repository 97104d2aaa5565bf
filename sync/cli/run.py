"""``icsync run --config FILE``: the daemon (schedules, webhook receiver, health and metrics)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sync.daemon.schedules import validate_schedules
from sync.foundation.config import load_config
from sync.foundation.errors import ConfigError
from sync.foundation.logs import configure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("--config", type=Path, required=True, help="the TOML configuration file")
    parser.add_argument("--listen", help="override [service] listen (host:port)")


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM; exit 0 after a clean stop."""
    from sync.daemon.service import bridge_stdlib_logging, run_daemon  # after --help: fast

    config = load_config(args.config)
    service = config.settings.service
    if args.listen:
        service = service.model_copy(update={"listen": args.listen})
        config.settings = config.settings.model_copy(update={"service": service})
    if not config.settings.companies:
        raise ConfigError("no [[companies]]: the daemon would have nothing to do; add one",
                          key="companies")
    validate_schedules(config.settings.companies)
    configure(service.log_format, service.log_level)
    bridge_stdlib_logging(service.log_level)
    return run_daemon(config)
