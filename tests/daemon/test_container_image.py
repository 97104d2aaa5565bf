"""The container image's inputs: .dockerignore keeps secrets and local state out of the build
context, the Dockerfile pins what it takes from outside, CI's image check reads its Debian mirror
from the machine, and the Kubernetes memory limit leaves headroom over the measured peak."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"
IMAGE_SH = ROOT / ".ci" / "image.sh"


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """The .dockerignore lines as (excludes, regex), in order."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                part, re.escape(part))
        rules.append((not negated, re.compile(regex + "$")))
    return rules


def _excluded(path: str) -> bool:
    """Docker's rule: the last line matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for excludes, regex in _ignore_rules():
        if any(regex.match(p) for p in prefixes):
            verdict = excludes
    return verdict


@pytest.mark.parametrize("path", [
    "deploy/container/secrets/icompleat_api_key",
    "deploy/container/secrets/state_db_password",
    ".venv/bin/python",
    ".git/config",
    "tests/scenarios/harness.py",
    "benchmarks/results/s22_reference.json",
    "sync/__pycache__/cli.cpython-311.pyc",
    "connectors/.mypy_cache/3.11/x.json",
    ".ruff_cache/CACHEDIR.TAG",
    ".pytest_cache/v/cache/lastfailed",
    "sync/state.db",
    "sync/.env",
    "icsync-demo/state.db",
])
def test_dockerignore_keeps_out(path: str) -> None:
    """Secrets, virtual environments, version control, caches, local state and tests stay out."""
    assert _excluded(path), path


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    """Every path the Dockerfile copies from the context, and the package sources, get in."""
    copied = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied += line.split()[1:-1]
    assert {"pyproject.toml", "uv.lock", "sync", "connectors"} <= set(copied)
    for path in copied:
        assert not _excluded(path), path
    for source in [*ROOT.glob("sync/**/*.py"), *ROOT.glob("connectors/**/*.py")]:
        rel = source.relative_to(ROOT).as_posix()
        assert not _excluded(rel), rel


def test_dockerfile_pins_its_base_by_digest_and_its_tools_by_version() -> None:
    """The base image default carries a sha256 digest; every stage uses it; uv is pinned."""
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base, "no PYTHON_IMAGE default"
    assert re.fullmatch(r"[\w./:-]+@sha256:[0-9a-f]{64}", base.group(1)), base.group(1)
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["${PYTHON_IMAGE}"] * 2, froms
    assert re.search(r"^ARG UV_VERSION=\d+\.\d+\.\d+$", text, re.M)
    assert re.search(r"^ARG HATCHLING_VERSION=\d+\.\d+\.\d+$", text, re.M)
    installs = re.findall(r"pip install ([^\n\\&]+)", text)
    assert installs == ['"uv==${UV_VERSION}" '], installs
    assert "uv sync --locked --no-dev --no-editable" in text


def test_ci_image_check_reads_the_mirror_from_apt(tmp_path: Path) -> None:
    """image.sh takes the bookworm mirror from deb822 or one-line apt sources, naming no host."""
    text = IMAGE_SH.read_text()
    assert not re.search(r"https?://[a-z0-9]", text), "a host is written into image.sh"
    deb822, oneline, none = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    (deb822 / "sources.list.d").mkdir(parents=True)
    (deb822 / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.test/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\n")
    (oneline / "sources.list.d").mkdir(parents=True)
    (oneline / "sources.list").write_text(
        "deb [arch=amd64 signed-by=/k.gpg] https://other.test/debian bookworm main\n")
    (none / "sources.list.d").mkdir(parents=True)
    (none / "sources.list").write_text("deb http://mirror.test/ubuntu noble main\n")
    found = {}
    for name, folder in (("deb822", deb822), ("oneline", oneline), ("none", none)):
        done = subprocess.run(["bash", str(IMAGE_SH), "mirror", str(folder)], check=True,
                              capture_output=True, text=True, timeout=30)
        found[name] = done.stdout.strip()
    assert found == {"deb822": "http://mirror.test/debian",
                     "oneline": "https://other.test/debian", "none": ""}


def test_kubernetes_memory_limit_leaves_headroom_over_the_measured_peak() -> None:
    """The sidecar's memory limit is at least 1.5x the recorded 200k-supplier peak RSS."""
    measured = json.loads((ROOT / "deploy" / "kubernetes" / "peak_memory.json").read_text())
    assert measured["sizes"]["suppliers"] >= 200_000
    sidecar = (ROOT / "deploy" / "kubernetes" / "sidecar.yaml").read_text()
    limit = re.search(r"limits: \{memory: (\d+)(Mi|Gi)\}", sidecar)
    assert limit, "no memory limit"
    limit_mib = int(limit.group(1)) * (1024 if limit.group(2) == "Gi" else 1)
    assert limit_mib >= 1.5 * measured["peak_mb"], (limit_mib, measured["peak_mb"])
