"""S29: every bad configuration of the attack run ends with exit 2, a message naming the key,
and no traceback, in a real ``icsync`` process (table-driven)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.world import ROOT, child_env, write_config

pytestmark = pytest.mark.slow
NOWHERE = "http://127.0.0.1:9"  # nothing listens there; no variant may get that far anyway


def _sub(pattern: str, new: str) -> Callable[[Path, str], str]:
    def edit(_root: Path, text: str) -> str:
        changed = re.sub(pattern, lambda _m: new, text, count=1, flags=re.MULTILINE)
        assert changed != text, pattern
        return changed
    return edit


def _append(section: str, line: str) -> Callable[[Path, str], str]:
    return _sub(rf"^\[{re.escape(section)}\]\n", f"[{section}]\n{line}\n")


def _company(line: str) -> Callable[[Path, str], str]:
    return _sub(r"^\[\[companies\]\]\n", f"[[companies]]\n{line}\n")


def _latin1_config(root: Path, text: str) -> str:
    return text.replace('name = "acme"', 'name = "caf\xe9"')  # written as Latin-1 below


def _secret_file(root: Path, text: str) -> str:
    (root / "key").write_bytes(b"\xff\xfekey\n")
    return re.sub(r'^api_key = ".*"$', f'api_key_file = "{root / "key"}"', text, count=1,
                  flags=re.MULTILINE)


def _tokens_file(root: Path, text: str) -> str:
    (root / "tokens").write_bytes(b"tok\xe9n\n")
    return text.replace("[webhook]\n", f'[webhook]\ntokens_file = "{root / "tokens"}"\n')


def _no_companies(_root: Path, text: str) -> str:
    return text.split("[[companies]]")[0]


def _read_only_state(root: Path, text: str) -> str:
    folder = root / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere it may: /proc takes no new files from anyone
        folder = Path("/proc")
    return _sub(r"^url = \"sqlite:///.*\"$", f'url = "sqlite:///{folder}/state.db"')(root, text)


# (name, edit of the config text, command, a key the message must name)
CASES: list[tuple[str, Callable[[Path, str], str], str, str]] = [
    ("config not UTF-8", _latin1_config, "run", "UTF-8"),
    ("secret file not UTF-8", _secret_file, "run", "icompleat.api_key_file"),
    ("tokens file not UTF-8", _tokens_file, "run", "webhook.tokens_file"),
    ("port not a number", _sub(r'^url = "sqlite:///.*"$', 'url = "postgresql://u@db:port/x"'),
     "run", "state.url"),
    ("timeout inf", _sub(r"^timeout_seconds = .*$", "timeout_seconds = inf"), "run",
     "icompleat.timeout_seconds"),
    ("jitter inf", _sub(r"^startup_jitter_seconds = .*$", "startup_jitter_seconds = inf"), "run",
     "service.startup_jitter_seconds"),
    ("lease inf", _sub(r"^lease_seconds = .*$", "lease_seconds = inf"), "run",
     "state.lease_seconds"),
    ("huge interval", _sub(r'"reference" = "1h"', '"reference" = "99999999999999999999h"'), "run",
     "companies.0.schedules.reference"),
    ("cron never fires", _sub(r'"readback" = "0 3 \* \* \*"', '"readback" = "0 0 31 2 *"'), "run",
     "companies.0.schedules.readback"),
    ("check: every banana", _sub(r'"reference" = "1h"', '"reference" = "every banana"'), "check",
     "companies.0.schedules.reference"),
    ("run: every banana", _sub(r'"reference" = "1h"', '"reference" = "every banana"'), "run",
     "companies.0.schedules.reference"),
    ("unknown route placeholder", _append("icompleat", 'routes."tenant" = { path = '
                                                       '"/api/tenant/{tenantId}/{nope}" }'),
     "run", "icompleat.routes.tenant.path"),
    ("route to another host", _append("icompleat", 'routes."tenant" = { path = '
                                                   '"http://evil.example/api/tenant/{tenantId}" }'),
     "run", "routes.tenant.path"),
    ("empty header value", _append("icompleat", 'headers = { key = "" }'), "run",
     "icompleat.headers"),
    ("CRLF header value", _append("icompleat", 'headers = { key = "x-api\\r\\nx-evil: 1" }'),
     "run", "icompleat.headers"),
    ("empty webhook header", _append("webhook", 'header = ""'), "run", "webhook.header"),
    ("unknown kind in delete_policy", _company('delete_policy = { bananas = "delete" }'), "run",
     "companies.0.delete_policy"),
    ("unknown kind in guard", _company("guard = { bananas = { max_shrink_rows = 1 } }"), "run",
     "companies.0.guard"),
    ("unknown kind in a source table", _append("sources.erp", "kinds.bananas = {}"), "run",
     "sources.erp"),
    ("run without companies", _no_companies, "run", "companies"),
    ("state DB in a read-only folder", _read_only_state, "sync", "state.url"),
]


@pytest.mark.parametrize(("edit", "command", "key"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_configuration_exits_2_naming_the_key(
        tmp_path: Path, edit: Callable[[Path, str], str], command: str, key: str) -> None:
    """Exit 2, the key in the message, no traceback, within seconds."""
    config = write_config(tmp_path, NOWHERE, icompleat={"max_attempts": 1})
    text = edit(tmp_path, config.read_text(encoding="utf-8"))
    config.write_bytes(text.encode("latin-1" if edit is _latin1_config else "utf-8"))
    done = subprocess.run([sys.executable, "-m", "sync.cli", command, "--config", str(config)],
                          cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=90,
                          check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert key in output, output
    assert "Traceback" not in output, output
