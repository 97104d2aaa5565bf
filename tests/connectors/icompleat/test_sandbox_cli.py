"""`icsync sandbox` as a user runs it: a process that serves until SIGTERM, key never printed."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sync.cli import sandbox as command
from sync.foundation.errors import ConfigError
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID, api_headers

ROOT = Path(__file__).resolve().parents[3]
SECOND_COMPANY = "0b6f7c1d-2e3a-4b5c-8d9e-0f1a2b3c4d5e"


def start(*extra: str, env: dict[str, str], entry: tuple[str, ...] = ("sync.cli", "sandbox"),
          ) -> subprocess.Popen[str]:
    """Run ``icsync sandbox`` (or the module's own entry point) on a free port."""
    argv = [sys.executable, "-m", *entry, "--port", "0", "--tenant-id", TENANT_ID,
            "--company-id", COMPANY_ID, "--company-id", SECOND_COMPANY, *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def banner(process: subprocess.Popen[str], lines: int = 2) -> list[str]:
    """The first ``lines`` lines the command prints (bounded by the test timeout)."""
    assert process.stdout is not None
    return [process.stdout.readline() for _ in range(lines)]


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then the exit code and the rest of the output."""
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=20)
    return process.returncode, out


@pytest.mark.slow  # `icsync` loads every command module at start: seconds of imports
@pytest.mark.timeout(90)
def test_serves_until_sigterm_and_prints_a_curl_line(tmp_path: Path) -> None:
    """The banner names the URL and a curl line reading the key from the environment."""
    env = {**os.environ, "ICSYNC_API_KEY": CANARY_KEY}
    process = start("--db", str(tmp_path / "sb.db"), env=env)
    try:
        first, curl = banner(process)
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url is not None
        assert "$ICSYNC_API_KEY" in curl
        assert curl.startswith("curl ")
        companies = httpx.get(f"{url.group(0)}/api/companies/{TENANT_ID}", headers=api_headers())
        assert [c["Id"] for c in companies.json()["Companies"]] == [COMPANY_ID, SECOND_COMPANY]
    finally:
        code, rest = stop(process)
    assert code == 0
    assert CANARY_KEY not in first + curl + rest
    assert (tmp_path / "sb.db").exists()


@pytest.mark.timeout(60)
def test_key_file_is_read_and_quoted_in_the_curl_line(tmp_path: Path) -> None:
    """With --api-key-file (and the light module entry) the curl line reads the file."""
    key_file = tmp_path / "key"
    key_file.write_text(CANARY_KEY + "\n")
    env = {k: v for k, v in os.environ.items() if k != "ICSYNC_API_KEY"}
    process = start("--api-key-file", str(key_file), env=env, entry=("sync.cli.sandbox",))
    try:
        first, curl = banner(process)
        assert f"$(cat {key_file})" in curl
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url is not None
        tenant = httpx.get(f"{url.group(0)}/api/tenant/{TENANT_ID}", headers=api_headers())
        assert tenant.status_code == 200
    finally:
        code, rest = stop(process)
    assert code == 0
    assert CANARY_KEY not in first + curl + rest


def parse(*argv: str) -> argparse.Namespace:
    """The command's arguments as its parser reads them."""
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(["--tenant-id", TENANT_ID, "--company-id", COMPANY_ID, *argv])


def test_no_key_is_a_config_error_naming_where_to_put_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key anywhere the command refuses to start and says how to give one."""
    monkeypatch.delenv("ICSYNC_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="ICSYNC_API_KEY"):
        command.run(parse())


def test_webhook_url_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook URL without a token is refused before anything is served."""
    monkeypatch.delenv("ICSYNC_WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="--webhook-token"):
        command.run(parse("--api-key", "k-123456", "--webhook-url", "http://127.0.0.1:9/h"))


def test_a_busy_port_is_a_config_error(sandbox_url: str) -> None:
    """A port already in use is reported as such, naming --port."""
    port = sandbox_url.rsplit(":", 1)[1]
    started = time.monotonic()
    with pytest.raises(ConfigError, match="--port"):
        command.run(parse("--api-key", "k-123456", "--port", port))
    assert time.monotonic() - started < 5
