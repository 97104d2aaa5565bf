"""The engine's small pieces: drift, merging reads, resuming refreshes, progress, the example
configuration, the runtime's connectors and the fast path's hashes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from rich.console import Console

from connectors.icompleat.sandbox import SandboxServer
from sync.console.progress import LiveProgress, notes, summary_table
from sync.foundation.config import Config, parse_settings
from sync.foundation.entities import chunked
from sync.foundation.errors import ConfigError
from sync.foundation.outcomes import worst
from sync.reference.apply import KindResult, keys_digest
from sync.reference.engine import CompanyResult, readback_company
from sync.reference.fingerprint import remote_hash, source_hash
from sync.reference.readback import find_drift, merge_reads
from sync.reference.refresh import resume_point
from sync.reference.remote import RemoteRead
from sync.runtime.context import open_runtime
from sync.state.rows import RefreshRow
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID
from tests.reference.support import COMPANY, erp_execute, remote_codes, sync

ROOT = Path(__file__).resolve().parents[2]


def test_find_drift_names_added_edited_and_removed() -> None:
    """Drift compares the remote truth with the remote copy record by record."""
    remote = {"A": {"Code": "A", "Name": "a2"}, "C": {"Code": "C", "Name": "c"}}
    state = {"A": {"Code": "A", "Name": "a"}, "B": {"Code": "B", "Name": "b"}}
    drift = find_drift("k", remote, state, {"A": "2", "C": "3"}, {"A": "1", "B": "2"}, (),
                       "source-wins")
    assert drift.added == ("C",)
    assert drift.removed == ("B",)
    assert drift.edited == (("A", (("Name", "a", "a2"),)),)
    assert drift.count == 3


def test_merge_keeps_what_only_an_earlier_read_saw() -> None:
    """A state record one read saw and the last missed is kept, never dropped on one read."""
    first = RemoteRead({"A": {"Code": "A"}, "B": {"Code": "B"}}, {"A": "a", "B": "b"}, 2)
    last = RemoteRead({"A": {"Code": "A"}}, {"A": "a"}, 2)
    merged, kept = merge_reads([first, last], {"A", "B"})
    assert set(merged.records) == {"A", "B"}
    assert kept == ("B",)
    assert merged.reads == 4


def marker(sent: int, token: str | None, minutes: float, set_hash: str = "h") -> RefreshRow:
    """An open refresh marker."""
    return RefreshRow(COMPANY, "suppliers", datetime.now(UTC), token,
                      datetime.now(UTC) + timedelta(minutes=minutes), sent, 3, set_hash)


def test_resume_point_only_for_the_same_set_and_a_live_token() -> None:
    """A refresh resumes from its token only when the set is unchanged and the token fresh."""
    assert resume_point(marker(2, "T", 30), "h", 3) == (2, "T")
    assert resume_point(marker(2, "T", 30), "other", 3) == (0, "")
    assert resume_point(marker(2, "T", 0.5), "h", 3) == (0, "")
    assert resume_point(marker(0, None, 30), "h", 3) == (0, "")
    assert resume_point(None, "h", 3) == (0, "")


def test_chunks_and_digests() -> None:
    """Chunks of 100 (one empty chunk for an empty set); set digests depend on order."""
    assert [len(c) for c in chunked([str(i) for i in range(250)], 100)] == [100, 100, 50]
    assert chunked([], 100) == []
    assert keys_digest(["a", "b"], {"a": "1", "b": "2"}) != keys_digest(["b", "a"],
                                                                         {"a": "1", "b": "2"})


def test_hashes_are_stable_and_sensitive() -> None:
    """The fast path's hashes change with one cell or one digest, and only then."""
    frame = pd.DataFrame({"Code": ["A", "B"], "Name": ["x", "y"]}, dtype=object)
    same = pd.DataFrame({"Code": ["A", "B"], "Name": ["x", "y"]}, dtype=object)
    other = pd.DataFrame({"Code": ["A", "B"], "Name": ["x", "z"]}, dtype=object)
    assert source_hash(frame) == source_hash(same) != source_hash(other)
    assert remote_hash(["A", "B"], ["1", "2"]) == remote_hash(["B", "A"], ["2", "1"])
    assert remote_hash(["A"], ["1"]) != remote_hash(["A"], ["2"])
    # The text hashed is "key TAB digest" lines in code point order (the stored form).
    keys = ["b", "Zoë", "a\x1fB", "é", "10", "9", "😀", "\uff41"]
    digests = [f"d{i}" for i in range(len(keys))]
    text = "\n".join(f"{k}\t{d}" for k, d in sorted(zip(keys, digests, strict=True)))
    assert remote_hash(keys, digests) == hashlib.sha256(text.encode()).hexdigest()
    # As Arrow arrays (how the SQLite reader hands them over): the same hash.
    assert remote_hash(pa.array(keys), pa.array(digests)) == remote_hash(keys, digests)
    ordered = sorted(zip(keys, digests, strict=True))  # as stored: already in key order
    assert remote_hash(pa.array([k for k, _ in ordered]), pa.array([d for _, d in ordered])) \
        == remote_hash(keys, digests)
    assert remote_hash([], []) == hashlib.sha256(b"").hexdigest()
    lone = ["x\udcff", "a"]  # a key Arrow cannot hold takes the same text through Python
    text = "a\td1\nx\udcff\td0".encode("utf-8", "surrogatepass")
    assert remote_hash(lone, ["d0", "d1"]) == hashlib.sha256(text).hexdigest()


def test_worst_outcome_decides_the_exit_code() -> None:
    """auth > failed > blocked > partial > ok."""
    assert worst(["ok", "partial", "blocked"]) == "blocked"
    assert worst(["partial", "auth", "failed"]) == "auth"
    assert worst([]) == "ok"


def test_summary_and_progress_render_plain() -> None:
    """The summary table and the notes read well without colour; the bar counts calls."""
    kind = KindResult("suppliers", created=3, calls=4, strategy="targeted", unknown=1,
                      settle_reads=2, partial_window_seconds=1.5)
    result = CompanyResult("uk", kinds=[kind]).settle()
    out = io.StringIO()
    Console(file=out, no_color=True, width=100).print(summary_table(result))
    assert "suppliers" in out.getvalue()
    assert "targeted" in out.getvalue()
    lines = notes(result)
    assert any("settled with 2 read(s)" in line for line in lines)
    assert any("1.5 s" in line for line in lines)
    bar = io.StringIO()
    with LiveProgress("uk", Console(file=bar, force_terminal=True, width=100)) as progress:
        progress.plan("Suppliers", 2)
        progress.advance(3)  # a retry round may go past the plan
    assert "Suppliers" in bar.getvalue()


def test_example_configuration_is_valid() -> None:
    """config/example.toml parses and validates (every setting named in it exists)."""
    data = tomllib.loads((ROOT / "config" / "example.toml").read_text(encoding="utf-8"))
    settings = parse_settings(data)
    assert settings.companies[0].delete_policy == {"account_codes": "ignore"}


def test_runtime_builds_each_source_once(config: Config) -> None:
    """Sources are built on first use and cached; an unknown one is a ConfigError."""
    async def check() -> None:
        async with open_runtime(config) as rt:
            assert rt.source("erp") is rt.source("erp")
            with pytest.raises(ConfigError, match=r"sources\.nope"):
                rt.source("nope")
            assert rt.holder.count(":") == 2

    asyncio.run(check())


def test_readback_job_repairs_a_hand_delete(sandbox: SandboxServer, config: Config) -> None:
    """The read-back job finds a supplier deleted by hand and puts it back."""
    sync(config)
    gone = remote_codes(sandbox, "suppliers")[3]
    sandbox.state.remove(TENANT_ID, COMPANY_ID, "suppliers", gone)

    async def job() -> CompanyResult:
        async with open_runtime(config) as rt:
            return await readback_company(rt, config.settings.companies[0])

    result = asyncio.run(job())
    assert {d.kind: d.removed for d in result.drift}["suppliers"] == (gone,)
    assert gone in remote_codes(sandbox, "suppliers")
    assert result.outcome == "ok"


def test_source_failure_leaves_kind_partial(sandbox: SandboxServer, config: Config,
                                            erp: Path) -> None:
    """A kind whose source cannot be read is partial; the other kinds still sync."""
    erp_execute(erp, "ALTER TABLE tax_codes RENAME TO tax_codes_gone")
    result = sync(config)
    kinds = {k.kind: k for k in result.kinds}
    assert kinds["tax_codes"].outcome == "partial"
    assert kinds["suppliers"].outcome == "ok"
    assert result.outcome == "partial"
    assert len(remote_codes(sandbox, "suppliers")) == 150


def test_settings_reject_an_unknown_key() -> None:
    """A typo in a company's table fails before anything runs (exit 2 territory)."""
    with pytest.raises(ConfigError, match="companies"):
        parse_settings({"companies": [{"name": "x", "company_id": "y", "drift": "report"}]})
