"""S19: the state database corrupt, deleted, or restored from an old backup.

A corrupt file is refused with a clear error (exit 1) and left exactly as it was. A deleted
state is rebuilt from iCompleat's lists: no delete, no create, nothing re-sent when the ERP has
not changed. An old backup restored over the state converges: with ``--full`` (the documented
step after a restore) without re-sending anything iCompleat already holds; even without it, with
no mass delete and no duplicate record (L = X = U = 0).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import apply_changes
from tests.reference.support import last_seq, writes
from tests.scenarios.harness import MakeWorld, World, make_world_fixture  # noqa: F401 (fixture)


def test_s19_corrupt_state_is_refused(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """A damaged state file: exit 1, an error saying what to do, the file untouched."""
    world = make_world()
    world.clean()
    data = bytearray(world.state.read_bytes())
    data[4096:8192] = b"\xde\xad\xbe\xef" * 1024  # a whole page of garbage
    world.state.write_bytes(bytes(data))
    seq = last_seq(sandbox)
    child = world.cli()
    assert child.returncode == 1, child.stderr[-800:]
    assert "restore the last good backup" in child.stderr
    assert world.state.read_bytes() == bytes(data)
    assert writes(sandbox, seq) == []


def test_s19_deleted_state_is_rebuilt(make_world: MakeWorld, sandbox: SandboxServer,
                                      tmp_path: Path) -> None:
    """No state at all: the lists are read back, nothing is deleted or created again."""
    world = make_world()
    world.clean()
    for path in tmp_path.glob("state.db*"):
        path.unlink()
    seq = last_seq(sandbox)
    result = world.clean()
    assert result.outcome == "ok", result.to_dict()
    assert writes(sandbox, seq) == []
    assert world.check().ok


def test_s19_deleted_state_with_erp_changes(make_world: MakeWorld, sandbox: SandboxServer,
                                            tmp_path: Path) -> None:
    """No state and a changed ERP: only suppliers are written (no token to append with after
    the loss, so the new one goes in a complete set), one removed, nothing duplicated."""
    world = make_world(suppliers=600)
    world.clean()
    for path in tmp_path.glob("state.db*"):
        path.unlink()
    apply_changes(world.erp)
    seq = last_seq(sandbox)
    result = world.clean()
    assert {e.route for e in writes(sandbox, seq)} <= {"suppliers.post", "suppliers.edit",
                                                       "suppliers.delete"}
    suppliers = {k.kind: k for k in result.kinds}["suppliers"]
    assert (suppliers.created, suppliers.edited, suppliers.deleted) == (1, 3, 1)
    assert world.check().ok, str(world.check())


def old_backup(world: World) -> Path:
    """Sync, back the state up, change the ERP, sync again, restore the backup."""
    world.clean()
    backup = world.tmp / "backup.db"
    shutil.copyfile(world.state, backup)
    apply_changes(world.erp)
    world.clean()
    shutil.copyfile(backup, world.state)
    return backup


def test_s19_old_backup_with_full(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """An old backup restored, then --full: converges without re-sending anything."""
    world = make_world(suppliers=600)
    old_backup(world)
    seq = last_seq(sandbox)
    result = world.clean(full=True)
    assert writes(sandbox, seq) == []
    assert {d.kind: d.count for d in result.drift}["suppliers"] == 5  # the run it forgot
    assert world.check().ok, str(world.check())


@pytest.mark.slow
def test_s19_old_backup_without_full(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """An old backup restored and a plain run: no mass delete, no duplicate, converged."""
    world = make_world(suppliers=600)
    old_backup(world)
    seq = last_seq(sandbox)
    world.clean()
    deletes = [e for e in writes(sandbox, seq) if e.method == "DELETE"]
    assert len(deletes) <= 1  # at most the supplier the ERP really removed (already gone: 11)
    figures = world.check()
    assert not figures.lost
    assert not figures.unexpected
    assert not figures.unknown
    # Appending the forgotten records again re-sends what iCompleat holds (last one wins: no
    # duplicate record); that is why a restore is followed by --full.
    assert [d for d in figures.duplicated if not d.startswith("resent ")] == []
