"""``icsync alerts test|list --config FILE``: check the alert channels, see the conditions.

- ``test`` sends one test message to every channel of ``[alerts] urls_file`` and prints, per
  channel (its URL masked), whether it was delivered. Exit 0 when every channel took it, 1 when
  one did not, 2 when no channel is configured.
- ``list`` shows the alert conditions active now and the messages still waiting to be sent.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from sync.daemon.channels import build_channels
from sync.foundation.config import Config, load_config
from sync.foundation.errors import AlertNotSent, ConfigError, ExitCode
from sync.runtime.context import open_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("action", choices=("test", "list"))
    parser.add_argument("--config", type=Path, required=True, help="the TOML configuration file")


def run(args: argparse.Namespace) -> int:
    """Send the test message, or list conditions; the exit code described above."""
    config = load_config(args.config)
    if args.action == "list":
        return show(config)
    channels = build_channels(config.alert_urls)
    if not channels:
        raise ConfigError("no alert channel: put apprise URLs, one a line, in the file it names",
                          key="alerts.urls_file")
    failed = 0
    title = f"[icsync] test alert from {socket.gethostname()}"
    body = ("This is a test of icsync's alert channels (`icsync alerts test`). "
            "If you can read it, this channel works.")
    for channel in channels:
        try:
            channel.send(title, body, timeout=config.settings.alerts.send_timeout_seconds)
            print(f"{channel.name}: delivered")
        except AlertNotSent as exc:
            failed += 1
            print(str(exc))
    return int(ExitCode.FAILED if failed else ExitCode.OK)


def show(config: Config) -> int:
    """Print active conditions and waiting messages."""

    with open_store(config) as store:
        active = store.alert_conditions()
        waiting = store.alert_messages(pending=True)
    for row in active:
        print(f"active since {row.started_at:%Y-%m-%d %H:%M} UTC  {row.key}: {row.detail}")
    for message in waiting:
        print(f"waiting (attempts {message.attempts})  {message.event}:{message.key}  "
              f"{message.last_error or ''}")
    if not active and not waiting:
        print("no alert condition is active; no message is waiting")
    return 0
