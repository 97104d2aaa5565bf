"""S10: the process dies, or iCompleat fails, after chunk 1 of a refresh: a partial set is live.

The next start finishes that refresh before anything else is planned for the kind (resuming
from the stored continuation token when the set is unchanged), and reports how long the partial
set was live. L = D = X = U = 0 afterwards, and no chunk is sent twice.
"""

from __future__ import annotations

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.reference.engine import CompanyResult, KindResult
from tests.reference.support import erp_execute, last_seq, remote_codes, writes
from tests.scenarios.harness import MakeWorld, make_world_fixture, show  # noqa: F401 (fixture)


def suppliers_of(result: CompanyResult) -> KindResult:
    """The suppliers' result of a company run."""
    return {k.kind: k for k in result.kinds}["suppliers"]


def test_s10_killed_after_chunk_one(make_world: MakeWorld, sandbox: SandboxServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL right after suppliers chunk 1 of 3: the next start resumes with chunk 2."""
    world = make_world()
    child = world.cli(crash_at="mid_refresh:5")  # 4 one-chunk kinds, then suppliers chunk 1
    assert child.killed, child.stderr[-800:]
    assert len(remote_codes(sandbox, "suppliers")) == 100  # the partial set is live
    seq = last_seq(sandbox)
    result = world.clean()
    suppliers = suppliers_of(result)
    posts = [e for e in writes(sandbox, seq) if e.route == "suppliers.post"]
    assert len(posts) == 2  # chunks 2 and 3 only
    assert suppliers.partial_window_seconds is not None
    assert suppliers.partial_window_seconds > 0
    show(capsys, f"S10 killed after chunk 1 of 3: partial set live for "
                 f"{suppliers.partial_window_seconds:.2f} s until the next start finished it")
    assert world.check().ok, str(world.check())


def test_s10_server_error_after_chunk_one(make_world: MakeWorld, sandbox: SandboxServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Chunk 2 keeps answering 500 for the whole run: the run ends partial with the marker
    open; the next run (iCompleat healthy again) finishes the set and reports the window."""
    world = make_world()
    sandbox.state.faults.set("suppliers.post", error_rate=1.0, after=1)
    first = world.clean()
    assert first.outcome == "partial", first.to_dict()
    assert len(remote_codes(sandbox, "suppliers")) == 100
    sandbox.state.faults.clear()
    result = world.clean()
    suppliers = suppliers_of(result)
    assert result.outcome == "ok", result.to_dict()
    assert suppliers.partial_window_seconds is not None
    assert suppliers.partial_window_seconds > 0
    show(capsys, f"S10 500s after chunk 1 of 3: partial set live for "
                 f"{suppliers.partial_window_seconds:.2f} s until the next run finished it")
    assert world.check().ok, str(world.check())


def test_s10_one_error_is_recovered_within_the_run(make_world: MakeWorld,
                                                   sandbox: SandboxServer) -> None:
    """A single 500 on chunk 2: settled by a read and resumed in the same run."""
    world = make_world()
    sandbox.state.faults.set("suppliers.post", error_rate=1.0, after=1, times=1)
    result = world.clean()
    assert result.outcome == "ok", result.to_dict()
    assert world.check().ok, str(world.check())


@pytest.mark.slow
def test_s10_changed_source_restarts_the_set(make_world: MakeWorld, sandbox: SandboxServer) -> None:
    """The source changed after the crash: the set is sent again from the start (a new complete
    set), never finished with chunks of another set."""
    world = make_world()
    child = world.cli(crash_at="mid_refresh:5")
    assert child.killed
    erp_execute(world.erp, "UPDATE suppliers SET supplier_name = 'Changed Ltd' "
                           "WHERE supplier_code = 'S00150'")
    seq = last_seq(sandbox)
    world.clean()
    posts = [e for e in writes(sandbox, seq) if e.route == "suppliers.post"]
    assert len(posts) == 3
    assert world.check().ok, str(world.check())
