"""S01: kill -9 mid reference sync, at every named crash point and at random moments.

A real ``icsync sync`` process (``python -m sync.cli``) is SIGKILLed at a crash point (the Nth
time it is reached) or after a random delay; then ONE clean run must make iCompleat equal to
the source: L = D = X = U = 0, where D also counts every append that re-sent records iCompleat
already held (a create repeated blindly). Two workloads: the first load (complete sets, refresh
markers) and an incremental run (edits, appends with the stored token, deletes, custom field
values). The runs needed to converge are reported (always 1 here).
"""

from __future__ import annotations

import random

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import apply_changes
from tests.reference.support import erp_execute
from tests.scenarios.harness import MakeWorld, World, make_world_fixture, show  # noqa: F401 (fixture)

POINTS = ("after_intent", "after_remote_call", "before_state_update")


def changed_world(make_world: MakeWorld) -> World:
    """A world synced once, then changed in the ERP (targeted plan with every operation)."""
    world = make_world(suppliers=600)
    assert world.clean().outcome == "ok"
    apply_changes(world.erp)
    erp_execute(world.erp, "DELETE FROM suppliers WHERE supplier_code = 'S00599'")
    erp_execute(world.erp, "UPDATE analysis_values SET name = 'Finance & Tax' WHERE code='D01'")
    erp_execute(world.erp, "INSERT INTO analysis_values VALUES ('Department', 'D09', "
                           "'Procurement', 'List', 0)")
    return world


def crash_and_converge(world: World, crash_at: str, capsys: pytest.CaptureFixture[str]) -> int:
    """Kill a child sync at ``crash_at``, then converge with clean runs; the runs it took."""
    child = world.cli(crash_at=crash_at)
    assert child.killed, f"{crash_at} never reached: {child.returncode} {child.stderr[-800:]}"
    runs = world.converge()
    show(capsys, f"S01 killed at {crash_at}: converged in {runs} clean run(s), L=D=X=U=0")
    return runs


# The occurrences the every-point tests below do not already reach (those cover 1, 2, 5, 6, 9
# and 12 in a first load; 1 and 3 to 6 in an incremental run).
@pytest.mark.parametrize("crash_at", [
    "mid_refresh:6",
    pytest.param("after_remote_call:7", marks=pytest.mark.slow),
    pytest.param("before_state_update:8", marks=pytest.mark.slow)])
def test_s01_first_load_killed(make_world: MakeWorld, crash_at: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Killed during the first load (complete sets): one clean run converges, no blind re-send."""
    world = make_world(suppliers=600)
    assert crash_and_converge(world, crash_at, capsys) == 1


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["after_intent:2"])
def test_s01_incremental_killed(make_world: MakeWorld, crash_at: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """Killed during an incremental run (edits, append, delete, values): one clean run."""
    world = changed_world(make_world)
    assert crash_and_converge(world, crash_at, capsys) == 1


@pytest.mark.slow
@pytest.mark.parametrize("point", [*POINTS, "mid_refresh"])
@pytest.mark.parametrize("nth", [1, 2, 5, 6, 9, 12])
def test_s01_first_load_every_point(make_world: MakeWorld, point: str, nth: int,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Every crash point, at many occurrences, during the first load."""
    world = make_world(suppliers=600)
    child = world.cli(crash_at=f"{point}:{nth}")
    if not child.killed:
        assert child.returncode == 0, child.stderr[-800:]
        pytest.skip(f"{point} is reached fewer than {nth} times in a first load")
    runs = world.converge()
    show(capsys, f"S01 killed at {point}:{nth}: converged in {runs} clean run(s), L=D=X=U=0")
    assert runs == 1


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("nth", [1, 3, 4, 5, 6])
def test_s01_incremental_every_point(make_world: MakeWorld, point: str, nth: int,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Every crash point, at each of its occurrences, during an incremental run."""
    world = changed_world(make_world)
    child = world.cli(crash_at=f"{point}:{nth}")
    if not child.killed:
        assert child.returncode in (0, 4), child.stderr[-800:]
        pytest.skip(f"{point} is reached fewer than {nth} times in this run")
    runs = world.converge()
    show(capsys, f"S01 killed at {point}:{nth}: converged in {runs} clean run(s), L=D=X=U=0")
    assert runs == 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_s01_killed_at_random_moments(make_world: MakeWorld, sandbox: SandboxServer,
                                      capsys: pytest.CaptureFixture[str],
                                      seed: int) -> None:
    """SIGKILL after a random delay while calls are slowed to 50 ms: one clean run converges."""
    world = make_world(suppliers=600)
    sandbox.state.faults.set("*", latency=0.05)
    delay = random.Random(seed).uniform(1.0, 2.5)  # ~1 s starting, ~1.5 s of calls
    child = world.cli(kill_after=delay)
    sandbox.state.faults.clear()
    assert child.killed or child.returncode == 0, child.stderr[-800:]
    runs = world.converge()
    show(capsys, f"S01 {'killed' if child.killed else 'finished'} after {delay:.2f} s: "
                 f"converged in {runs} clean run(s)")
    assert runs == 1


def test_s01_a_landed_last_refresh_chunk_is_not_sent_again(
        make_world: MakeWorld, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Killed right after the first load's first complete set (currencies, one chunk) was
    accepted: the clean run settles it by a read, closes the refresh and sends it no more."""
    world = make_world(suppliers=600)
    child = world.cli(crash_at="after_remote_call:1")
    assert child.killed, child.stderr[-800:]
    assert sandbox.state.log.counts()["currencycodes.post"] == {200: 1}
    assert world.converge() == 1
    assert sandbox.state.log.counts()["currencycodes.post"] == {200: 1}
    show(capsys, "S01 killed after the currencies' only chunk landed: settled by a read, "
                 "not sent again")
