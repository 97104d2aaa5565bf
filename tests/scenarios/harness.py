"""The crash-test harness: a real ``icsync sync`` process, killed with SIGKILL on purpose.

:class:`World` holds one scenario's pieces (the sandbox, a sample ERP, a state DB and a config
file written as TOML); :meth:`World.cli` runs ``python -m sync.cli sync`` as a child process,
optionally armed with ``ICSYNC_CRASH_AT`` (a named crash point) or killed after a delay (a
random moment); :meth:`World.clean` runs one clean sync in this process. The API key reaches the
child through a key file, never its command line or environment listing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import create_erp
from sync.foundation.config import Config, load_config
from sync.foundation.tomlout import toml_text
from sync.reference.engine import CompanyResult
from tests.fixtures.sandbox import CANARY_KEY
from tests.reference.support import settings_dict, sync
from tests.scenarios.checker import Check, WireTap, check

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 90.0
PYCACHE = Path(tempfile.gettempdir()) / "icsync-test-pycache"


@dataclass
class Child:
    """How a child ``icsync sync`` ended."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def killed(self) -> bool:
        """True when SIGKILL ended it."""
        return self.returncode == -signal.SIGKILL

    def summary(self) -> dict[str, Any]:
        """The ``--json`` document it printed."""
        return dict(json.loads(self.stdout))


MakeWorld = Callable[..., "World"]


def show(capsys: pytest.CaptureFixture[str], figure: str) -> None:
    """Print a scenario's reported figure on the terminal, even while output is captured."""
    with capsys.disabled():
        print(f"\n  [figure] {figure}")


@pytest.fixture(name="make_world")
def make_world_fixture(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Callable[..., World]]:
    """``make_world(**options)``: worlds on the test's sandbox, each in its own directory; their
    wire taps come off the session's sandbox when the test ends. (Import this function into a
    test module to use the fixture.)"""
    made: list[World] = []

    def factory(**options: Any) -> World:
        directory = tmp_path / f"world{len(made)}"
        directory.mkdir()
        made.append(World(sandbox, directory, **options))
        return made[-1]

    yield factory
    WireTap.remove(sandbox)


class World:
    """One scenario: sandbox + sample ERP + state DB + config file, in ``tmp``."""

    def __init__(self, sandbox: SandboxServer, tmp: Path, *, suppliers: int = 250,
                 icompleat: dict[str, Any] | None = None, **company: Any) -> None:
        self.sandbox, self.tmp = sandbox, tmp
        self.icompleat = icompleat or {}
        self.erp = create_erp(tmp / "erp.db", suppliers_count=suppliers)
        self.state = tmp / "state.db"
        self.key_file = tmp / "api_key"
        self.key_file.write_text(CANARY_KEY + "\n", encoding="utf-8")
        self.config_path = tmp / "icsync.toml"
        self.company = company
        self.write_config()
        self.tap = WireTap().install(sandbox)

    def settings(self) -> dict[str, Any]:
        """The configuration mapping (key in a file)."""
        data = settings_dict(self.sandbox.url, self.erp, self.state, **self.company)
        del data["icompleat"]["api_key"]
        data["icompleat"]["api_key_file"] = str(self.key_file)
        data["icompleat"].update(self.icompleat)
        data["service"] = {"log_format": "json", "log_level": "warning"}
        return data

    def write_config(self, **company: Any) -> None:
        """(Re)write the config file, with ``company`` settings added."""
        self.company.update(company)
        self.config_path.write_text(toml_text(self.settings()) + "\n", encoding="utf-8")

    @property
    def config(self) -> Config:
        """The config file, loaded."""
        return load_config(self.config_path)

    def cli(self, *args: str, crash_at: str | None = None, kill_after: float | None = None,
            timeout: float = CHILD_TIMEOUT) -> Child:
        """Run ``icsync sync --config FILE --json ARGS`` in a child process."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ICSYNC_") and k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = str(ROOT)
        # Children compile once into a private bytecode cache, instead of every module on every
        # start (seconds per child), without writing into the source tree or the venv.
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        if crash_at:
            env["ICSYNC_CRASH_AT"] = crash_at
        cmd = [sys.executable, "-m", "sync.cli", "sync", "--config", str(self.config_path),
               "--json", *args]
        started = time.monotonic()
        with subprocess.Popen(cmd, cwd=self.tmp, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as proc:
            try:
                out, err = proc.communicate(timeout=kill_after if kill_after else timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                out, err = proc.communicate(timeout=timeout)
        return Child(proc.returncode, out, err, time.monotonic() - started)

    def clean(self, **options: Any) -> CompanyResult:
        """One clean sync in this process."""
        return sync(self.config, **options)

    def check(self, **options: Any) -> Check:
        """The checker's figures now (blind re-sends counted)."""
        return check(self.sandbox, self.config, tap=self.tap, **options)

    def converge(self, limit: int = 3) -> int:
        """Clean runs until the checker passes; how many it took (fails after ``limit``)."""
        for attempt in range(1, limit + 1):
            result = self.clean()
            figures = self.check()
            if figures.ok and result.outcome in ("ok", "partial"):
                return attempt
        raise AssertionError(f"no convergence after {limit} clean runs: {figures}; "
                             f"last outcome {result.outcome}: {result.error}")
