"""S14: drift (records edited, deleted or added by hand in iCompleat) and lists that change while
they are paged.

``--full`` reads every list back: with ``source-wins`` the drift is found, reported and repaired
(L = D = X = 0 after the run); with ``report`` it is only reported and iCompleat keeps the hand
changes. A record missing from one paged read (the list shrank between two pages) is never
dropped from the remote copy nor re-created without a second, consistent read.
"""

from __future__ import annotations

from connectors.icompleat.sandbox import SandboxServer
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID
from tests.reference.support import remote_codes
from tests.scenarios.harness import MakeWorld, make_world_fixture  # noqa: F401 (fixture)


def hand_changes(sandbox: SandboxServer) -> dict[str, str]:
    """Edit, delete and add one supplier by hand in iCompleat; which code got which."""
    edited = dict(sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers")[5])
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers",
                       [{**edited, "Name": "Renamed By Hand Ltd"}])
    deleted = remote_codes(sandbox, "suppliers")[7]
    assert sandbox.state.remove(TENANT_ID, COMPANY_ID, "suppliers", deleted)
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers", [{"Code": "HAND1", "Name": "Typed In"}])
    return {"edited": edited["Code"], "deleted": deleted, "added": "HAND1"}


def test_s14_drift_repaired_when_source_wins(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """--full finds the three hand changes and puts the source's version back."""
    world = make_world()
    world.clean()
    codes = hand_changes(sandbox)
    assert not world.check().ok
    result = world.clean(full=True)
    drift = {d.kind: d for d in result.drift}["suppliers"]
    assert drift.added == ("HAND1",)
    assert drift.removed == (codes["deleted"],)
    assert [k for k, _ in drift.edited] == [codes["edited"]]
    assert world.check().ok, str(world.check())
    assert result.outcome == "ok"


def test_s14_drift_only_reported(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """With drift_policy "report" the drift is listed and iCompleat keeps the hand changes."""
    world = make_world(drift_policy="report")
    world.clean()
    codes = hand_changes(sandbox)
    seq = len(sandbox.state.log.entries())
    result = world.clean(full=True)
    drift = {d.kind: d for d in result.drift}["suppliers"]
    assert drift.count == 3
    assert [e for e in sandbox.state.log.entries()[seq:] if e.method != "GET"] == []
    assert "HAND1" in remote_codes(sandbox, "suppliers")
    assert codes["deleted"] not in remote_codes(sandbox, "suppliers")


def test_s14_list_shrinking_while_paged(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """A record removed from page 1 while page 2 is served shifts another out of sight: the
    second read shows it is there, so it is neither dropped nor re-created."""
    world = make_world()
    world.clean()
    codes = remote_codes(sandbox, "suppliers")
    gone, shifted = codes[10], codes[100]
    sandbox.state.faults.set("suppliers.list", change_after_page=1, change_remove=[gone])
    seq = len(sandbox.state.log.entries())
    result = world.clean(full=True)
    drift = {d.kind: d for d in result.drift}["suppliers"]
    assert drift.removed == (gone,)  # confirmed by two reads in a row
    assert shifted not in drift.removed
    posts = [e for e in sandbox.state.log.entries()[seq:] if e.route == "suppliers.post"]
    reads = [e for e in sandbox.state.log.entries()[seq:] if e.route == "suppliers.list"]
    assert len(reads) >= 2 * 4  # at least two complete reads of 3 pages + the empty page
    assert len(posts) == 1  # the one genuinely removed supplier appended back (source wins)
    assert world.check().ok, str(world.check())
