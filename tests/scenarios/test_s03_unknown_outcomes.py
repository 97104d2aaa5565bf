"""S03: writes of unknown outcome (commit-then-500, connection dropped after the server applied
the write) are settled by a READ before anything is sent again, and nothing is duplicated.

Each case injects the fault with the sandbox's switches, runs one sync in process and checks:
the run ends ok within itself (the unknowns settled by one read of the kind per round), the
sandbox log shows a list read between every failed write and the next write of that kind, the
checker finds L = D = X = U = 0 (D including blind re-sends), and the reads per unknown outcome
are reported.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import apply_changes
from tests.scenarios.harness import MakeWorld, World, make_world_fixture, show  # noqa: F401 (fixture)


def settled_before_retry(sandbox: SandboxServer, api: str) -> None:
    """After each unanswered or 500 edit or delete of ``api``, a list read comes before the same
    call is made again (POSTs re-sent blindly are caught by the checker's D)."""
    entries = [e for e in sandbox.state.log.entries() if e.route.startswith(f"{api}.")]
    for i, entry in enumerate(entries):
        if entry.method in ("PUT", "DELETE") and entry.status in (0, 500):
            following = entries[i + 1:]
            again = next((e for e in following
                          if e.method == entry.method and e.path == entry.path), None)
            if again is not None:
                between = following[:following.index(again)]
                assert any(e.route == f"{api}.list" for e in between), (entry, again)


def run_and_check(world: World, label: str, capsys: pytest.CaptureFixture[str]) -> Any:
    """One in-process run; the suppliers' result after checking L = D = X = U = 0."""
    result = world.clean()
    world.sandbox.state.faults.clear()
    figures = world.check()
    assert figures.ok, str(figures)
    assert result.outcome in ("ok", "partial"), result.to_dict()
    kinds = {k.kind: k for k in result.kinds}
    suppliers = kinds["suppliers"]
    assert suppliers.unknown > 0
    assert suppliers.settle_reads > 0
    show(capsys, f"S03 {label}: {suppliers.unknown} unknown outcome(s) settled by reading "
                 f"the list: {suppliers.settle_reads} page call(s), "
                 f"{suppliers.settle_reads / suppliers.unknown:.2f} per unknown")
    settled_before_retry(world.sandbox, "suppliers")
    return suppliers


@pytest.mark.parametrize("fail", ["500", "drop"])
def test_s03_refresh_chunk_applied_then_lost(make_world: MakeWorld, sandbox: SandboxServer,
                                             fail: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Chunk 2 of 3 lands but its answer is lost: one read settles it, chunk 3 follows."""
    world = make_world()
    sandbox.state.faults.set("suppliers.post", commit_then_fail=fail, after=1, times=1)
    suppliers = run_and_check(world, f"refresh chunk 2, {fail}", capsys)
    assert suppliers.unknown == 1


def test_s03_first_chunk_applied_then_lost(make_world: MakeWorld, sandbox: SandboxServer,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The first chunk (no token yet) lands but its answer is lost: the set is sent again."""
    world = make_world()
    sandbox.state.faults.set("suppliers.post", commit_then_fail="drop", times=1)
    run_and_check(world, "refresh chunk 1, drop", capsys)


def test_s03_targeted_writes_applied_then_lost(make_world: MakeWorld,
                                               sandbox: SandboxServer,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Every edit, the append and the delete land but answer 500 or nothing: one read settles
    them all at the end of the round, and nothing is sent twice."""
    world = make_world(suppliers=600)
    world.clean()
    apply_changes(world.erp)
    sandbox.state.faults.set("suppliers.edit", commit_then_fail="500")
    sandbox.state.faults.set("suppliers.post", commit_then_fail="drop")
    sandbox.state.faults.set("suppliers.delete", commit_then_fail="500")
    suppliers = run_and_check(world, "targeted: 3 edits, 1 append, 1 delete", capsys)
    assert suppliers.unknown == 5
    edits = [e for e in sandbox.state.log.entries() if e.route == "suppliers.edit"]
    assert len(edits) == 3  # each edit sent once: the read showed it had landed


@pytest.mark.slow
def test_s03_unknown_left_by_a_dead_run_is_settled_first(make_world: MakeWorld) -> None:
    """An operation a killed run left open is settled by a read at the next start."""
    world = make_world(suppliers=600)
    world.clean()
    apply_changes(world.erp)
    child = world.cli(crash_at="after_remote_call:1")
    assert child.killed
    result = world.clean()
    figures = world.check()
    assert figures.ok, str(figures)
    suppliers = {k.kind: k for k in result.kinds}["suppliers"]
    assert suppliers.settle_reads >= 1
