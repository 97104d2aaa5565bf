"""S08: iCompleat refuses 3% of the rows (400, ErrorCode 12), one bad row in a chunk.

The sandbox is made stricter than icsync's own validation (supplier names of at most 35
characters), so the rows reach iCompleat and are refused there. A refused chunk is bisected:
its good rows still land; each bad row is quarantined with iCompleat's code and message, is not
sent again while its source row is unchanged, and is sent (and lands) once it is fixed.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from connectors.icompleat.sandbox import SandboxServer, references
from sync.foundation.entities import Kind
from sync.state.store import StateStore
from tests.reference.support import erp_execute, last_seq, writes
from tests.scenarios.harness import MakeWorld, World, make_world_fixture  # noqa: F401 (fixture)

NAME_LIMIT = 35


def stricter(kind: Kind) -> Kind:
    """``kind`` with Name limited to NAME_LIMIT characters."""
    fields = tuple(replace(f, max_length=NAME_LIMIT) if f.name == "Name" else f
                   for f in kind.fields)
    return replace(kind, fields=fields)


@pytest.fixture
def strict_sandbox(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The sandbox refusing supplier names longer than NAME_LIMIT (icsync allows 100)."""
    original = references.kind_for

    def kind_for(api: str) -> Kind:
        kind = original(api)
        return stricter(kind) if api == "suppliers" else kind

    monkeypatch.setattr(references, "kind_for", kind_for)
    return sandbox


def spoil(world: World) -> list[str]:
    """Give every 33rd supplier (3%) a 40-character name; their codes."""
    bad = [f"S{n:05d}" for n in range(7, 251, 33)]
    for code in bad:
        erp_execute(world.erp, "UPDATE suppliers SET supplier_name = ? WHERE supplier_code = ?",
                    ("Northern Consolidated Holdings Group Ltd", code))
    return bad


def quarantined(world: World) -> dict[str, str]:
    """Open remote-origin quarantine rows of suppliers: key -> message."""
    store = StateStore.open(world.config.settings.state.url)
    try:
        return {q.key: q.message for q in store.quarantined("uk", "suppliers")
                if q.origin == "remote"}
    finally:
        store.close()


def test_s08_bad_rows_quarantined_good_rows_land(make_world: MakeWorld,
                                                 strict_sandbox: SandboxServer) -> None:
    """First load with 8 bad rows in 3 chunks: 242 land, 8 quarantined with code 12."""
    world = make_world()
    bad = spoil(world)
    result = world.clean()
    suppliers = {k.kind: k for k in result.kinds}["suppliers"]
    assert result.outcome == "partial"
    assert suppliers.rejected == len(bad)
    figures = world.check(exclude=set(bad))
    assert figures.ok, str(figures)
    held = quarantined(world)
    assert sorted(held) == bad
    assert all("error 12" in m and "Name" in m for m in held.values())


def test_s08_not_resent_until_changed(make_world: MakeWorld, strict_sandbox: SandboxServer) -> None:
    """A second run sends nothing; fixing one row sends that row only, and it lands."""
    world = make_world()
    bad = spoil(world)
    world.clean()
    seq = last_seq(strict_sandbox)
    again = world.clean()
    assert writes(strict_sandbox, seq) == []
    assert {k.kind: k for k in again.kinds}["suppliers"].rejected == len(bad)
    erp_execute(world.erp, "UPDATE suppliers SET supplier_name = 'Fixed Name Ltd' "
                           "WHERE supplier_code = ?", (bad[0],))
    seq = last_seq(strict_sandbox)
    world.clean()
    sent = writes(strict_sandbox, seq)
    assert [e.route for e in sent] == ["suppliers.post"]
    assert sorted(quarantined(world)) == bad[1:]
    assert world.check(exclude=set(bad[1:])).ok
