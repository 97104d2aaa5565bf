"""S23: a Hypothesis state machine over the ERP, the sync, faults, crashes and hand edits.

Rules change the ERP (suppliers and account codes added, edited, removed; custom field values
renamed and added), run syncs under faults (writes applied but unanswered, calls failing before
they apply), crash a run at a named point (the process's state as a SIGKILL would leave it: the
run is abandoned at that boundary, nothing after it runs), and edit iCompleat by hand. After
every CLEAN run (read-back first when iCompleat was edited by hand) the invariant holds: iCompleat
equals the ERP (L = X = 0), no record exists twice and no append re-sent what iCompleat held
(D = 0), no operation is left unsettled (U = 0); a run the guard blocked sent no delete and no
refresh (the operator's --allow-deletes then completes it).
"""

from __future__ import annotations

import itertools
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

import sync.reference.apply
import sync.reference.refresh
from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import insert_suppliers, suppliers
from sync.foundation.entities import get_kind
from tests.fixtures.profiles import examples as scaled
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID
from tests.reference.support import erp_execute
from tests.scenarios.checker import WireTap
from tests.scenarios.harness import World

POINTS = ("after_intent", "after_remote_call", "before_state_update", "mid_refresh")
WRITE_ROUTES = ("suppliers.post", "suppliers.edit", "suppliers.delete", "accountcodes.post",
                "accountcodes.edit", "customfield.values")


class SimulatedCrash(Exception):
    """The run stops dead at a crash point (not an IcsyncError: nothing handles it)."""


class ReferenceMachine(RuleBasedStateMachine):
    """The ERP is the model; the sandbox must equal it after every clean run."""

    sandbox: ClassVar[SandboxServer]
    base: ClassVar[Path]
    counter: ClassVar[itertools.count[int]] = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.sandbox.reset()
        directory = self.base / f"example{next(self.counter)}"
        directory.mkdir()
        self.world = World(self.sandbox, directory, suppliers=40)
        self.next_supplier = 500
        self.removed_since_clean = 0
        self.hand_edited = False
        self.clean_runs = 0

    def teardown(self) -> None:
        """Take the wire tap off the shared sandbox."""
        WireTap.remove(self.sandbox)

    def codes(self) -> list[str]:
        """Supplier codes in the ERP."""
        with closing(sqlite3.connect(self.world.erp)) as db:
            return [r[0] for r in db.execute("SELECT supplier_code FROM suppliers ORDER BY 1")]

    # -- the ERP changes ---------------------------------------------------------------------

    @rule(count=st.integers(1, 3))
    def add_suppliers(self, count: int) -> None:
        """New suppliers in the ERP."""
        with closing(sqlite3.connect(self.world.erp)) as db, db:
            insert_suppliers(db, list(suppliers(count, seed=self.next_supplier,
                                                start=self.next_supplier)))
        self.next_supplier += count

    @rule(pick=st.integers(0, 10_000), phone=st.integers(0, 9999))
    def edit_supplier(self, pick: int, phone: int) -> None:
        """A supplier's phone number changes."""
        codes = self.codes()
        erp_execute(self.world.erp, "UPDATE suppliers SET phone = ? WHERE supplier_code = ?",
                    (f"+44 113 496 {phone:04d}", codes[pick % len(codes)]))

    @precondition(lambda self: self.removed_since_clean < 2 and len(self.codes()) > 30)
    @rule(pick=st.integers(0, 10_000))
    def remove_supplier(self, pick: int) -> None:
        """A supplier leaves the ERP (few at a time: the guard would block a mass delete)."""
        codes = self.codes()
        erp_execute(self.world.erp, "DELETE FROM suppliers WHERE supplier_code = ?",
                    (codes[pick % len(codes)],))
        self.removed_since_clean += 1

    @rule(n=st.integers(0, 22), suffix=st.sampled_from(["", " (old)", " - EU"]))
    def rename_account(self, n: int, suffix: str) -> None:
        """An account code's name changes."""
        erp_execute(self.world.erp, "UPDATE gl_accounts SET description = description || ? "
                                    "WHERE account_no = ?", (suffix, f"{5000 + 10 * n}"))

    @rule(n=st.integers(1, 30))
    def add_department(self, n: int) -> None:
        """A custom field value is added (or renamed when it exists)."""
        erp_execute(self.world.erp, "INSERT OR REPLACE INTO analysis_values VALUES "
                                    "('Department', ?, ?, 'List', 0)", (f"X{n:02d}", f"Team {n}"))

    # -- runs ----------------------------------------------------------------------------------

    @rule()
    def clean_run(self) -> None:
        """A clean run; then iCompleat equals the ERP. When the guard blocks it (records added
        by hand would be removed past its limits) nothing is removed, and the operator's
        --allow-deletes completes it."""
        posts, seq = len(self.world.tap.posts), len(self.sandbox.state.log.entries())
        result = self.world.clean(full=self.hand_edited)
        if result.outcome == "blocked":
            blocked = {get_kind(k.kind).api for k in result.kinds if k.outcome == "blocked"}
            after = self.sandbox.state.log.entries()[seq:]
            assert [e for e in after if e.method == "DELETE"] == []
            refreshes = [p for p in self.world.tap.posts[posts:] if not p[1] and p[0] in blocked]
            assert refreshes == []
            result = self.world.clean(full=self.hand_edited, allow_deletes=True)
        assert result.outcome == "ok", result.to_dict()
        figures = self.world.check()
        assert figures.ok, str(figures)
        self.removed_since_clean, self.hand_edited = 0, False
        self.clean_runs += 1

    @rule(route=st.sampled_from(WRITE_ROUTES), mode=st.sampled_from(["500", "drop"]),
          times=st.integers(1, 3))
    def run_with_unknown_outcomes(self, route: str, mode: str, times: int) -> None:
        """Writes are applied but their answers lost; the run settles them by reading."""
        self.sandbox.state.faults.set(route, commit_then_fail=mode, times=times)
        try:
            result = self.world.clean()
        finally:
            self.sandbox.state.faults.clear()
        assert result.outcome in ("ok", "partial", "blocked"), result.to_dict()

    @rule(seed=st.integers(0, 1000))
    def run_with_failures(self, seed: int) -> None:
        """Half the calls fail before they apply."""
        self.sandbox.state.faults.seed(seed)
        self.sandbox.state.faults.set("*", error_rate=0.5, error_status=500)
        try:
            result = self.world.clean()
        finally:
            self.sandbox.state.faults.clear()
        assert result.outcome in ("ok", "partial", "blocked"), result.to_dict()

    @rule(point=st.sampled_from(POINTS), nth=st.integers(1, 6))
    def crashed_run(self, point: str, nth: int) -> None:
        """The run dies at the nth passage of a crash point."""
        seen = itertools.count(1)

        def crash_point(name: str) -> None:
            if name == point and next(seen) == nth:
                raise SimulatedCrash(f"{point}:{nth}")

        modules = (sync.reference.apply, sync.reference.refresh)
        originals = [m.crash_point for m in modules]
        for module in modules:
            module.crash_point = crash_point  # type: ignore[attr-defined]
        try:
            self.world.clean()
        except SimulatedCrash:
            pass
        finally:
            for module, original in zip(modules, originals, strict=True):
                module.crash_point = original  # type: ignore[attr-defined]

    # -- iCompleat edited by hand --------------------------------------------------------------

    @rule(pick=st.integers(0, 10_000), what=st.sampled_from(["edit", "remove", "add"]))
    def hand_edit(self, pick: int, what: str) -> None:
        """Someone edits iCompleat's suppliers in its screens."""
        held = self.sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers")
        if not held and what != "add":
            return
        record: dict[str, Any] = dict(held[pick % len(held)]) if held else {}
        if what == "edit":
            self.sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers",
                                    [{**record, "Name": "Edited By Hand"}])
        elif what == "remove":
            self.sandbox.state.remove(TENANT_ID, COMPANY_ID, "suppliers", record["Code"])
        else:
            self.sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers",
                                    [{"Code": f"HAND{pick % 50}", "Name": "Typed In"}])
        self.hand_edited = True


def run_machine(sandbox: SandboxServer, tmp_path: Path, examples: int, steps: int, *,
                derandomize: bool) -> None:
    """Run the machine on the test's sandbox."""
    ReferenceMachine.sandbox = sandbox
    ReferenceMachine.base = tmp_path
    run_state_machine_as_test(ReferenceMachine, settings=settings(
        max_examples=scaled(examples), stateful_step_count=steps, deadline=None, database=None,
        derandomize=derandomize, suppress_health_check=list(HealthCheck)))


def test_s23_state_machine(sandbox: SandboxServer, tmp_path: Path) -> None:
    """A few short histories, the same on every run (the slow variant explores at random)."""
    run_machine(sandbox, tmp_path, examples=3, steps=8, derandomize=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_s23_state_machine_long(sandbox: SandboxServer, tmp_path: Path) -> None:
    """More and longer random histories."""
    run_machine(sandbox, tmp_path, examples=10, steps=12, derandomize=False)
