"""S02: kill -9 mid transaction posting, with and without a unique index in the ERP table.

A real ``icsync poll`` subprocess is SIGKILLed at each named crash point (and at a moment chosen by
watching the ERP fill up), then replayed until a clean exit. The checker, after EVERY run: no
transaction has two ERP entries, and a journal number once given (in the ERP or in iCompleat)
never changes; after the clean run: every approved transaction has exactly one ERP entry and one
journal number, equal to what iCompleat shows (L = D = X = U = 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.transactions.world import ROOT, TxWorld, run_poll

CRASH_POINTS = ("after_ledger_seen", "after_erp_commit", "before_writeback", "after_writeback")
MAX_REPLAYS = 3


@pytest.fixture
def world(sandbox: Any, tmp_path: Path) -> TxWorld:
    """The sandbox, a SQLite ERP and a state DB, with the config between them."""
    return TxWorld(sandbox, tmp_path)


class Stability:
    """Remembers every journal number seen, per transaction, in the ERP and in iCompleat."""

    def __init__(self, world: TxWorld) -> None:
        self.world = world
        self.erp: dict[str, str] = {}
        self.remote: dict[str, str] = {}

    def check(self) -> None:
        """No duplicate entry; no journal number changed since the last look."""
        entries = self.world.erp_entries()
        doubled = {k: v for k, v in entries.items() if len(v) > 1}
        assert doubled == {}
        for tx_id, (journal,) in entries.items():
            assert self.erp.setdefault(tx_id, journal) == journal
        for tx_id, shown in self.world.remote_journals().items():
            if shown is not None:
                assert self.remote.setdefault(tx_id, shown) == shown
                assert self.erp.get(tx_id) == shown


def replay_until_clean(world: TxWorld, stable: Stability) -> int:
    """Run clean passes until one exits 0; how many it took."""
    for attempt in range(1, MAX_REPLAYS + 1):
        run = run_poll(world.config_path)
        stable.check()
        if run.returncode == 0:
            assert run.summary()["companies"][0]["outcome"] == "ok"
            return attempt
    pytest.fail(f"no clean exit after {MAX_REPLAYS} replays: {run.stderr[-2000:]}")


def test_s02_kill_after_erp_commit_without_unique_index(world: TxWorld) -> None:
    """The most dangerous window, ERP committed but ledger not updated, with no index to help."""
    world.write_config(unique_index=False)
    world.approved(5)
    stable = Stability(world)
    run = run_poll(world.config_path, crash_at="after_erp_commit:2")
    assert run.killed, run.stderr[-2000:]
    stable.check()
    replay_until_clean(world, stable)
    journals = world.check_exactly_once()
    assert len(journals) == 5


@pytest.mark.slow
@pytest.mark.parametrize("unique_index", [True, False], ids=["unique-index", "no-index"])
def test_s02_kill_at_every_crash_point_then_replay(world: TxWorld, unique_index: bool) -> None:
    """Killed at each crash point in turn, with new work flowing; replays converge exactly once."""
    world.write_config(unique_index=unique_index, types=("INV", "CRD"))
    world.approved(3)
    world.approved(2, "CRD")
    stable = Stability(world)
    for point in CRASH_POINTS:
        world.approved(2)
        run = run_poll(world.config_path, crash_at=f"{point}:2")
        assert run.killed, f"{point} never fired: {run.stderr[-2000:]}"
        stable.check()
    replays = replay_until_clean(world, stable)
    journals = world.check_exactly_once()
    assert len(journals) == 13
    assert replays == 1
    again = run_poll(world.config_path)
    assert again.summary()["companies"][0]["created"] == 0
    stable.check()


@pytest.mark.slow
@pytest.mark.parametrize("unique_index", [True, False], ids=["unique-index", "no-index"])
def test_s02_kill_at_a_moment_chosen_while_posting(world: TxWorld, unique_index: bool) -> None:
    """SIGKILL once the ERP holds some of the backlog (not at a named point); replays converge."""
    world.write_config(unique_index=unique_index)
    world.approved(30)
    world.sandbox.state.faults.set("transaction.detail", latency=0.02)
    stable = Stability(world)
    for threshold in (3, 12):
        proc = subprocess.Popen([sys.executable, "-m", "sync.cli", "poll", "--config",
                                 str(world.config_path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                env={k: v for k, v in os.environ.items()
                                     if not k.startswith("ICSYNC_")})
        try:
            deadline = time.monotonic() + 90
            while len(world.erp_entries()) < threshold and proc.poll() is None:
                assert time.monotonic() < deadline, "the poll never reached the threshold"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(30)
        stable.check()
    world.sandbox.state.faults.clear()
    replay_until_clean(world, stable)
    assert len(world.check_exactly_once()) == 30
