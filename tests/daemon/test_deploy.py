"""deploy/: the systemd units verify, and every shipped configuration is valid and consistent."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from connectors.base import CompanyRef
from connectors.factory import build_source
from sync.foundation.config import ServiceConfig, parse_settings
from sync.foundation.errors import ExitCode

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _unit(name: str) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key, []).append(value)
    return entries


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_units_pass_systemd_analyze_verify() -> None:
    """verify.sh: both units verify cleanly, and their exposure score is printed."""
    done = subprocess.run(["bash", str(DEPLOY / "systemd" / "verify.sh")], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verify icsync.service: ok" in done.stdout
    assert "verify icsync-resync.service: ok" in done.stdout


def test_service_unit_matches_the_program() -> None:
    """Notify + watchdog, the credentials icsync looks for, no restart on exits 2 and 5."""
    unit = _unit("icsync.service")
    assert unit["Type"] == ["notify"]
    assert unit["WatchdogSec"]
    credentials = {v.split(":")[0] for v in unit["LoadCredential"]}
    assert credentials == {"icompleat_api_key", "webhook_tokens"}
    prevented = set(unit["RestartPreventExitStatus"][0].split())
    assert prevented == {str(int(ExitCode.CONFIG)), str(int(ExitCode.AUTH))}
    stop = int(unit["TimeoutStopSec"][0])
    assert stop > ServiceConfig().shutdown_seconds
    assert "run --config" in unit["ExecStart"][0]
    for option in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "DynamicUser"):
        assert unit[option][0] in ("yes", "strict"), option


def test_units_set_a_descriptor_limit_the_server_stays_under() -> None:
    """Both units set LimitNOFILE; the HTTP server's connection cap leaves a quarter of it free."""
    from sync.daemon.connections import connection_limit

    for name in ("icsync.service", "icsync-resync.service"):
        limit = int(_unit(name)["LimitNOFILE"][0])
        assert limit >= 1024
        assert connection_limit(ServiceConfig().max_connections, limit) <= limit * 3 // 4


def test_resync_unit_is_a_full_one_shot() -> None:
    """The resync unit runs `icsync sync --full` once, with the same state and credentials."""
    unit = _unit("icsync-resync.service")
    assert unit["Type"] == ["oneshot"]
    assert unit["ExecStart"][0].endswith("sync --config /etc/icsync/icsync.toml --full")
    assert unit["StateDirectory"] == _unit("icsync.service")["StateDirectory"]


def test_container_config_is_valid_and_reads_its_sample_erp(tmp_path: Path) -> None:
    """The compose trial's icsync.toml validates, and its CSV source reads every kind."""
    data = tomllib.loads((DEPLOY / "container" / "icsync.toml").read_text())
    settings = parse_settings(data)
    assert settings.service.listen.startswith("0.0.0.0:")
    source_cfg = settings.sources["erp"].model_copy(
        update={"directory": DEPLOY / "container" / "erp"})
    source = build_source("erp", source_cfg)
    company = settings.companies[0]
    for kind in company.kinds:
        read = source.read(kind, CompanyRef(company.name, company.company_id))
        assert len(read.frame) >= 3, kind
        assert read.complete


def test_kubernetes_configmap_config_is_valid() -> None:
    """The TOML inside the sidecar's ConfigMap validates; probes hit /healthz and /readyz."""
    text = (DEPLOY / "kubernetes" / "sidecar.yaml").read_text()
    block = text.split("icsync.toml: |\n", 1)[1].split("\n---", 1)[0]
    toml = "\n".join(line[4:] for line in block.splitlines())
    settings = parse_settings(tomllib.loads(toml))
    port = settings.service.listen.rsplit(":", 1)[1]
    assert f"containerPort: {port}" in text
    assert "path: /healthz" in text
    assert "path: /readyz" in text
    assert "readOnlyRootFilesystem: true" in text
    assert "runAsNonRoot: true" in text


def test_dockerfile_is_multistage_locked_non_root_with_healthcheck() -> None:
    """Build from the lock, run as a numeric non-root user, health-check /healthz."""
    text = (DEPLOY / "container" / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert "uv sync --locked --no-dev" in text
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", text, re.M)
    assert re.search(r"^ARG UID=10001$", text, re.M)
    assert "HEALTHCHECK" in text
    assert "127.0.0.1:8787/healthz" in text
    assert "CREDENTIALS_DIRECTORY=/run/secrets" in text
    compose = (DEPLOY / "container" / "compose.yaml").read_text()
    for secret in ("icompleat_api_key", "webhook_tokens", "state_db_password"):
        assert f"  {secret}:\n    file: ./secrets/{secret}" in compose
    assert "read_only: true" in compose
