"""S07: the security key is regenerated in iCompleat mid-run, so calls start answering 401.

The run stops at the first 401 (no retry, nothing more sent), exits 5, and prints one error that
names where the key came from (the key file) and never the key; the remote copy stays equal to
what iCompleat holds, and the next run with the new key converges.
"""

from __future__ import annotations

from connectors.icompleat.sandbox import SandboxServer
from sync.state.store import StateStore
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID
from tests.reference.support import erp_execute, last_seq
from tests.scenarios.harness import MakeWorld, World, make_world_fixture  # noqa: F401 (fixture)

NEW_KEY = "icsync-rotated-key-0123456789abcdef"


def test_s07_rotation_mid_run_stops_at_first_401(make_world: MakeWorld,
                                                 sandbox: SandboxServer) -> None:
    """401 at request 9 of the first load: the run stops there with exit 5."""
    world = make_world()
    sandbox.state.faults.rotate_key_at(TENANT_ID, 9, NEW_KEY)
    child = world.cli()
    assert child.returncode == 5, child.stderr[-800:]
    entries = sandbox.state.log.entries()
    assert [e.status for e in entries].count(401) == 1
    assert entries[-1].status == 401  # nothing after the first 401
    doc = child.summary()
    error = doc["companies"][0]["error"]
    assert str(world.key_file) in error
    for text in (child.stdout, child.stderr):
        assert CANARY_KEY not in text
        assert NEW_KEY not in text
    sandbox.state.faults.clear()
    # The remote copy is what iCompleat holds: with the new key one run converges.
    world.key_file.write_text(NEW_KEY + "\n", encoding="utf-8")
    assert world.converge() == 1


def remote_copy(world: World) -> dict[str, dict[str, object]]:
    """The state's remote copy of suppliers."""
    store = StateStore.open(world.config.settings.state.url)
    try:
        return store.remote_records("uk", "suppliers")
    finally:
        store.close()


def test_s07_rotation_before_the_run_changes_no_state(make_world: MakeWorld,
                                                      sandbox: SandboxServer) -> None:
    """401 on the first call of a later run (an edit): nothing more sent, remote copy intact."""
    world = make_world()
    world.clean()
    erp_execute(world.erp, "UPDATE suppliers SET phone = '+44 20 7946 0999' "
                           "WHERE supplier_code = 'S00042'")
    before = remote_copy(world)
    sandbox.state.rotate_key(TENANT_ID, NEW_KEY)
    seq = last_seq(sandbox)
    result = world.clean()
    assert result.outcome == "auth"
    assert int(result.exit_code) == 5
    assert f"file {world.key_file}" in (result.error or "")
    assert CANARY_KEY not in (result.error or "")
    after = [e for e in sandbox.state.log.entries() if e.seq > seq]
    assert [(e.route, e.status) for e in after] == [("suppliers.edit", 401)]
    assert remote_copy(world) == before
    assert len(sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers")) == 250
