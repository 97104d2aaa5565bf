"""S13: a second run over an unchanged source makes zero write calls, also after the state
database is restored from a backup taken after the first run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from tests.reference.support import last_seq, writes
from tests.scenarios.harness import MakeWorld, make_world_fixture  # noqa: F401 (fixture)


def test_s13_second_run_writes_nothing(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """Run, run again: the second run only reads the ERP and the state."""
    world = make_world()
    world.clean()
    seq = last_seq(sandbox)
    result = world.clean()
    assert writes(sandbox, seq) == []
    assert last_seq(sandbox) == seq  # not even a read: the remote copy is trusted
    assert all(k.calls == 0 for k in result.kinds)


def test_s13_no_writes_after_restoring_a_backup(make_world: MakeWorld, sandbox: SandboxServer,
                                                tmp_path: Path) -> None:
    """Back up after the first run, run, restore, run: zero writes each time."""
    world = make_world()
    world.clean()
    backup = tmp_path / "backup.db"
    shutil.copyfile(world.state, backup)
    seq = last_seq(sandbox)
    world.clean()
    shutil.copyfile(backup, world.state)
    world.clean()
    assert writes(sandbox, seq) == []
    assert world.check().ok


@pytest.mark.slow
def test_s13_no_writes_through_the_command(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """`icsync sync` twice: exit 0 both times, the second with zero writes, all kinds "none"."""
    world = make_world()
    world.clean()
    seq = last_seq(sandbox)
    child = world.cli()
    assert child.returncode == 0, child.stderr[-800:]
    doc = child.summary()
    assert doc["exit_code"] == 0
    assert {k["strategy"] for k in doc["companies"][0]["kinds"]} == {"none"}
    assert writes(sandbox, seq) == []
