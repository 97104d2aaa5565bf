"""A plan over the light view (stored keys and digests) reads only the stored records it needs:
the edited ones, the held ones and, under delete policy "ignore", the ones beyond the source.
The whole remote copy is never read for a few of them; the plan and the calls are those the
whole copy gave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.config import Config
from sync.foundation.entities import get_kind
from sync.reference.kind import digest_frame, fill_frame
from sync.state.store import StateStore
from tests.reference.support import (
    COMPANY,
    erp_execute,
    last_seq,
    make_config,
    remote,
    remote_codes,
    sync,
    writes,
)


class Reads:
    """How the stored copy of suppliers was read: whole, or by key (how many records)."""

    def __init__(self) -> None:
        self.whole = 0
        self.by_key: list[int] = []


def count_reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    """From now on (after the first run, whose read-back reads it whole), count the reads of
    the stored copy of suppliers."""
    reads = Reads()
    whole, by_key = StateStore.remote_records, StateStore.remote_records_of

    def every(store: StateStore, company: str, kind: str) -> Any:
        reads.whole += kind == "suppliers"
        return whole(store, company, kind)

    def some(store: StateStore, company: str, kind: str, keys: Any) -> Any:
        out = by_key(store, company, kind, keys)
        if kind == "suppliers":
            reads.by_key.append(len(out))
        return out

    monkeypatch.setattr(StateStore, "remote_records", every)
    monkeypatch.setattr(StateStore, "remote_records_of", some)
    return reads


@pytest.mark.parametrize("keys", [["S1", "S2", "S3"], ["S3", "S1", "S2"], ["S1", "S1b", "S10"]])
def test_digest_frame_from_arrow_equals_from_lists(keys: list[str]) -> None:
    """Keys and digests read as Arrow (in order as stored, or not) give the frame the lists
    give: rows in key order, each with its own digest."""
    kind = get_kind("suppliers")
    digests = [f"d-{k}" for k in keys]
    light = digest_frame(kind, pa.array(keys), pa.array(digests))
    assert light.equals(digest_frame(kind, keys, digests))
    assert list(light.index) == sorted(keys)
    assert list(light["_digest"]) == [f"d-{k}" for k in sorted(keys)]


def test_fill_frame_sets_only_the_records_read() -> None:
    """The light frame's rows of the records read carry their canonical values; the others
    stay empty; every digest is the one stored."""
    kind = get_kind("suppliers")
    light = digest_frame(kind, ["S3", "S1", "S2"], ["d3", "d1", "d2"])
    records = [{"Code": "S2", "Name": " Two Ltd ", "PaymentDueDays": "30"}]
    filled = fill_frame(kind, light, records, {"S2": "d2"})
    assert list(filled.index) == ["S1", "S2", "S3"]
    assert list(filled["_digest"]) == ["d1", "d2", "d3"]
    assert filled.loc["S2", "Name"] == "Two Ltd"
    assert filled.loc["S2", "PaymentDueDays"] == 30
    assert filled.loc["S1"].drop("_digest").isna().all()
    assert filled.loc["S3"].drop("_digest").isna().all()
    stray = fill_frame(kind, light, [{"Code": "S9", "Name": "Nine"}], {"S9": "d9"})
    assert stray.drop(columns="_digest").isna().all().all()


def test_an_edit_beside_a_held_row_reads_two_records(
        sandbox: SandboxServer, config: Config, erp: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One edited and one rejected supplier among 150: the plan reads those two stored
    records, shows the edit's stored value as its before, sends that edit alone, and holds
    the rejected one."""
    sync(config)
    reads = count_reads(monkeypatch)
    before = next(r for r in remote(sandbox, "suppliers") if r["Code"] == "S00002")
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 20 7946 0001' "
                     "WHERE supplier_code = 'S00002'")
    erp_execute(erp, "UPDATE suppliers SET iso = 'ZZ' WHERE supplier_code = 'S00003'")
    dry = sync(config, dry_run=True)
    assert dry.plan is not None
    kind = next(k for k in dry.plan.kinds if k.kind == "suppliers")
    assert kind.diff.held == ("S00003",)
    [edit] = kind.diff.edits
    assert edit.key == "S00002"
    assert [(c.field, c.before, c.after) for c in edit.changes] == [
        ("Telephone", before["Telephone"], "+44 20 7946 0001")]
    assert (reads.whole, reads.by_key) == (0, [2])
    seq = last_seq(sandbox)
    applied = sync(config)
    suppliers = next(k for k in applied.kinds if k.kind == "suppliers")
    assert (suppliers.edited, suppliers.rejected) == (1, 1)
    assert [e.route for e in writes(sandbox, seq)] == ["suppliers.edit"]
    assert next(r for r in remote(sandbox, "suppliers")
                if r["Code"] == "S00003")["IsoCode"] != "ZZ"


def test_a_held_row_alone_reads_its_record_and_fills_no_frame(
        sandbox: SandboxServer, config: Config, erp: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One rejected supplier among 150 and no edit: the plan reads that one stored record and
    makes no filled copy of the frame (stored values matter only to edits); it holds the row,
    and the run sends nothing and leaves the remote record as it was."""
    import sync.reference.kind as kind_module

    sync(config)
    reads = count_reads(monkeypatch)
    filled: list[int] = []
    real = kind_module.fill_frame

    def spy(*args: Any) -> Any:
        filled.append(len(args[2]))
        return real(*args)

    monkeypatch.setattr(kind_module, "fill_frame", spy)
    before = next(r for r in remote(sandbox, "suppliers") if r["Code"] == "S00003")
    erp_execute(erp, "UPDATE suppliers SET iso = 'ZZ' WHERE supplier_code = 'S00003'")
    dry = sync(config, dry_run=True)
    assert dry.plan is not None
    kind = next(k for k in dry.plan.kinds if k.kind == "suppliers")
    assert (kind.diff.held, kind.diff.edits, kind.diff.unchanged) == (("S00003",), (), 149)
    assert (reads.whole, reads.by_key, filled) == (0, [1], [])
    seq = last_seq(sandbox)
    applied = sync(config)
    suppliers = next(k for k in applied.kinds if k.kind == "suppliers")
    assert (suppliers.edited, suppliers.rejected, suppliers.unchanged) == (0, 1, 149)
    assert writes(sandbox, seq) == []
    assert next(r for r in remote(sandbox, "suppliers") if r["Code"] == "S00003") == before
    assert filled == []


def test_a_refresh_resends_the_kept_records_read_by_key(
        sandbox: SandboxServer, erp: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Under "ignore", a refresh re-sends what is beyond the source and what is held, as
    stored: read by key, they reach iCompleat unchanged."""
    config = make_config(sandbox.url, erp, tmp_path / "s.db",
                         delete_policy={"suppliers": "ignore"})
    sync(config)
    reads = count_reads(monkeypatch)
    with StateStore.open(config.settings.state.url) as store:
        stored = store.remote_records_of(COMPANY, "suppliers", ["S00010", "S00011"])
    erp_execute(erp, "DELETE FROM suppliers WHERE supplier_code = 'S00010'")
    erp_execute(erp, "UPDATE suppliers SET iso = 'ZZ' WHERE supplier_code = 'S00011'")
    erp_execute(erp, "UPDATE suppliers SET phone = '1' WHERE supplier_code < 'S00020'")
    result = sync(config)
    suppliers = next(k for k in result.kinds if k.kind == "suppliers")
    assert suppliers.strategy == "refresh", suppliers
    assert {"S00010", "S00011"} <= set(remote_codes(sandbox, "suppliers"))
    now = {r["Code"]: r for r in remote(sandbox, "suppliers")}
    for key in ("S00010", "S00011"):
        assert {k: v for k, v in now[key].items() if k in stored[key]} == stored[key]
    # 17 edited (their before), one held, one beyond the source
    assert (reads.whole, reads.by_key[-1]) == (0, 19)


def test_most_of_the_copy_is_read_whole(sandbox: SandboxServer, config: Config, erp: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row edited (a changed mapping, a mass update): the stored copy is read in one
    pass, not key by key, and the run sends what it sent before."""
    sync(config)
    reads = count_reads(monkeypatch)
    erp_execute(erp, "UPDATE suppliers SET phone = '1'")
    result = sync(config)
    suppliers = next(k for k in result.kinds if k.kind == "suppliers")
    assert (suppliers.strategy, suppliers.edited) == ("refresh", 150)
    assert (reads.whole, reads.by_key) == (1, [])
    assert {r["Telephone"] for r in remote(sandbox, "suppliers")} == {"1"}
