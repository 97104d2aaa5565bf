"""The no-op fast path: a kind whose source, settings and remote copy did not change since its
last clean run is not normalised or diffed; anything that changed takes the full path."""

from __future__ import annotations

import gc
import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.config import Config
from sync.reference.engine import CompanyResult
from sync.reference.fingerprint import FINGERPRINTS, Fingerprint, remote_hash
from sync.state.store import StateStore
from tests.reference.support import COMPANY, erp_execute, last_seq, sync, writes


def suppliers(result: CompanyResult) -> tuple[bool, int, int]:
    """(fast path taken, unchanged, created) for the suppliers of ``result``."""
    kind = next(k for k in result.kinds if k.kind == "suppliers")
    return "normalise" not in kind.stages, kind.unchanged, kind.created


def kept(config: Config) -> tuple[Fingerprint | None, str]:
    """The suppliers' stored fingerprint, and the hash of the stored copy read afresh."""
    with StateStore.open(config.settings.state.url) as store:
        record = store.remote_records(COMPANY, FINGERPRINTS).get("suppliers")
        keys, digests = store.remote_key_digests(COMPANY, "suppliers")
    return (Fingerprint.from_record(record) if record else None), remote_hash(keys, digests)


def forget_fingerprint(config: Config) -> None:
    with StateStore.open(config.settings.state.url) as store:
        store.delete_remote(COMPANY, FINGERPRINTS, ["suppliers"])


def test_unchanged_inputs_take_the_fast_path(config: Config) -> None:
    """The first run applies and keeps a fingerprint of what it wrote; the second run finds
    everything as it was and skips normalising and diffing."""
    assert suppliers(sync(config)) == (False, 0, 150)
    fingerprint, fresh = kept(config)
    assert fingerprint is not None
    assert fingerprint.remote == fresh
    assert fingerprint.count == 150
    again = sync(config)
    assert again.outcome == "ok", again.to_dict()
    assert suppliers(again) == (True, 150, 0)
    forget_fingerprint(config)
    full = sync(config)
    assert suppliers(full) == (False, 150, 0)
    assert same_result(again) == same_result(full)  # the plan, its hash and verdict


def test_a_full_compare_that_writes_nothing_keeps_the_copy_it_compared(config: Config) -> None:
    """A no-op run on the full path keeps the hash of the copy it planned against (not read
    again): the same hash as a fresh read, and the next run takes the fast path."""
    sync(config)
    forget_fingerprint(config)
    assert kept(config)[0] is None
    full = sync(config)
    assert suppliers(full) == (False, 150, 0)
    fingerprint, fresh = kept(config)
    assert fingerprint is not None
    assert fingerprint.remote == fresh
    fast = sync(config)
    assert suppliers(fast) == (True, 150, 0)
    assert same_result(fast) == same_result(full)  # the guard's verdict and plan hash too


def test_a_changed_cell_or_remote_copy_takes_the_full_path(config: Config, erp: Path) -> None:
    """One ERP cell, or one digest of the remote copy changed behind the run's back (a repair
    by read-back, another version), and the plan is computed again."""
    sync(config)
    with closing(sqlite3.connect(erp)) as db, db:
        code = db.execute("SELECT supplier_code FROM suppliers ORDER BY 1").fetchone()[0]
        db.execute("UPDATE suppliers SET town = 'Elsewhere' WHERE supplier_code = ?", (code,))
    edited = sync(config)
    assert suppliers(edited)[0] is False
    assert next(k for k in edited.kinds if k.kind == "suppliers").edited == 1
    assert suppliers(sync(config)) == (True, 150, 0)
    with StateStore.open(config.settings.state.url) as store:
        records = store.remote_records(COMPANY, "suppliers")
        key = sorted(records)[0]
        store.upsert_remote(COMPANY, "suppliers", [(key, records[key], "0" * 64)])
    repaired = sync(config)
    assert suppliers(repaired)[0] is False
    assert next(k for k in repaired.kinds if k.kind == "suppliers").edited == 1


def test_the_stored_copy_is_read_beside_the_source(
        config: Config, erp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a SQLite state file the stored keys and digests are read by the reader process
    while the source is read, and the first plan starts from them: a full compare (no
    fingerprint) and an edit find what they found before, without the in-process read."""
    sync(config)
    forget_fingerprint(config)

    def refused(*_: object) -> None:
        raise AssertionError("the keys and digests were read in this process")

    monkeypatch.setattr(StateStore, "remote_key_digests", refused)
    full = sync(config)
    assert full.outcome == "ok", full.to_dict()
    assert suppliers(full) == (False, 150, 0)
    erp_execute(erp, "UPDATE suppliers SET town = 'Elsewhere' WHERE supplier_code = "
                "(SELECT min(supplier_code) FROM suppliers)")
    edited = sync(config)
    assert edited.outcome == "ok", edited.to_dict()
    assert next(k for k in edited.kinds if k.kind == "suppliers").edited == 1


def test_a_failed_source_read_leaves_no_stray_read_behind(
        config: Config, erp: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The source read fails while the stored copy, read beside it, fails too: the run
    reports the source's error, and the read started ahead ends quietly (its failure is
    taken, not reported later as never retrieved)."""
    sync(config)
    erp_execute(erp, "DROP TABLE suppliers")

    read = StateStore.remote_key_digests

    def broken(store: StateStore, company: str, kind: str) -> tuple[list[str], list[str]]:
        if kind == "suppliers":
            raise OSError("state database unreadable")
        return read(store, company, kind)

    monkeypatch.setattr(StateStore, "remote_key_digest_query", lambda *_: None)
    monkeypatch.setattr(StateStore, "remote_key_digests", broken)
    caplog.set_level(logging.DEBUG, logger="asyncio")
    failed = sync(config)
    gc.collect()
    kind = next(k for k in failed.kinds if k.kind == "suppliers")
    assert kind.outcome != "ok"
    assert "no such table: suppliers" in str(kind.error), kind
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]


def same_result(result: CompanyResult) -> dict[str, object]:
    """What a run reports, less its timings: the plan (with its hash, rejected rows and
    warnings), the kinds' counts and outcomes, the exit code."""
    kinds = [{k: v for k, v in kind.to_dict().items() if k not in ("stages", "seconds")}
             for kind in result.kinds]
    plan = result.plan.to_dict() if result.plan is not None else None
    return {"outcome": result.outcome, "exit": int(result.exit_code), "kinds": kinds,
            "plan": plan}


def quarantined(config: Config) -> list[tuple[str, str, str]]:
    with StateStore.open(config.settings.state.url) as store:
        return sorted((q.key, q.reason, q.status)
                      for q in store.quarantined(COMPANY, "suppliers", None))


def test_a_run_with_rejected_and_warned_rows_is_replayed(
        sandbox: SandboxServer, config: Config, erp: Path) -> None:
    """Real exports keep a few bad rows for months. Once a run over them finds nothing to
    send, the next run with the same inputs takes the fast path and reports exactly what the
    full path reported: the same plan (hash included), the same rejected and warned rows,
    the same counts and exit code. The rejected row stays quarantined, its last sighting
    moved on; nothing is sent."""
    sync(config)
    erp_execute(erp, "UPDATE suppliers SET iso = 'ZZ' WHERE supplier_code = 'S00003'")
    erp_execute(erp, "UPDATE suppliers SET email = 'accounts at example' "
                     "WHERE supplier_code = 'S00004'")
    applied = sync(config)  # sends the warned row's edit: a run that applied keeps nothing
    assert suppliers(applied) == (False, 148, 0)
    full = sync(config)
    assert suppliers(full)[0] is False
    assert full.plan is not None
    assert [r.reason for r in full.plan.rejected] == ["bad_iso_country"]
    assert [w.reason for w in full.plan.warnings] == ["bad_email"]
    fingerprint, _ = kept(config)
    assert fingerprint is not None
    assert fingerprint.replay is not None
    with StateStore.open(config.settings.state.url) as store:
        seen = store.quarantined(COMPANY, "suppliers")[0].last_seen
    seq = last_seq(sandbox)
    replayed = sync(config)
    assert suppliers(replayed)[0] is True
    assert same_result(replayed) == same_result(full)
    assert replayed.outcome == "partial"
    assert writes(sandbox, seq) == []
    assert quarantined(config) == [("S00003", "bad_iso_country", "open")]
    with StateStore.open(config.settings.state.url) as store:
        assert store.quarantined(COMPANY, "suppliers")[0].last_seen > seen
    dry = sync(config, dry_run=True)
    assert suppliers(dry)[0] is True
    assert same_result(dry)["plan"] == same_result(full)["plan"]


def test_an_operator_status_or_a_mended_row_ends_the_replay(config: Config, erp: Path) -> None:
    """The replay holds only while the quarantine is as the run left it: an operator's
    status on a quarantined row takes the full path (which reopens a row still bad), and
    the row mended in the ERP is sent and released."""
    sync(config)
    erp_execute(erp, "UPDATE suppliers SET iso = 'ZZ' WHERE supplier_code = 'S00003'")
    sync(config)
    assert suppliers(sync(config))[0] is True
    with StateStore.open(config.settings.state.url) as store:
        row = store.quarantined(COMPANY, "suppliers")[0]
        store.set_quarantine_status([row.id], "resolved")
    reopened = sync(config)
    assert suppliers(reopened)[0] is False
    assert quarantined(config) == [("S00003", "bad_iso_country", "open")]
    assert suppliers(sync(config))[0] is True
    erp_execute(erp, "UPDATE suppliers SET iso = 'GB' WHERE supplier_code = 'S00003'")
    mended = sync(config)
    assert mended.outcome == "ok", mended.to_dict()
    assert suppliers(mended)[0] is False
    assert quarantined(config) == []
    assert suppliers(sync(config)) == (True, 150, 0)


def test_a_replay_is_bounded(config: Config, erp: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """More findings than a replay may hold: no fingerprint is kept, and every run takes the
    full path (finding the same rows again)."""
    sync(config)
    forget_fingerprint(config)
    monkeypatch.setattr("sync.reference.fingerprint.REPLAY_MAX", 0)
    erp_execute(erp, "UPDATE suppliers SET iso = 'ZZ' WHERE supplier_code = 'S00003'")
    sync(config)
    again = sync(config)
    assert suppliers(again)[0] is False
    assert again.plan is not None
    assert len(again.plan.rejected) == 1
    assert kept(config)[0] is None


def test_a_dry_run_or_a_failed_call_keeps_no_replay(
        sandbox: SandboxServer, config: Config, erp: Path) -> None:
    """Only a run that applied nothing, and wrote its quarantine, keeps a replay: not a dry
    run over the same rows, not a run whose edit failed, not the run that then sent it."""
    sync(config)
    forget_fingerprint(config)
    erp_execute(erp, "UPDATE suppliers SET iso = 'ZZ' WHERE supplier_code = 'S00003'")
    dry = sync(config, dry_run=True)
    assert dry.plan is not None
    assert len(dry.plan.rejected) == 1
    assert kept(config)[0] is None
    assert quarantined(config) == []
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 1 1' WHERE supplier_code = 'S00002'")
    sandbox.state.faults.set("suppliers.edit", error_rate=1.0, error_status=500)
    failed = sync(config)
    kind = next(k for k in failed.kinds if k.kind == "suppliers")
    assert kind.edited == 0
    assert kind.failed + kind.unknown >= 1, kind
    assert kept(config)[0] is None
    sandbox.state.faults.clear()
    sent = sync(config)
    assert next(k for k in sent.kinds if k.kind == "suppliers").edited == 1
    assert kept(config)[0] is None  # it sent an edit and has a rejected row
    idle = sync(config)
    assert suppliers(idle)[0] is False
    fingerprint = kept(config)[0]
    assert fingerprint is not None
    assert fingerprint.replay is not None
    assert suppliers(sync(config))[0] is True


def test_stored_replays_read_back_or_are_refused() -> None:
    """A replay comes back from its stored form as it was kept; a damaged one (or one whose
    plan would send something) refuses the whole fingerprint, so the run takes the full
    path. A fingerprint stored before quarantines were hashed matches an empty one."""
    from sync.reference.fingerprint import NO_QUARANTINE, Replay, quarantine_hash
    from sync.reference.rules.diff import KindDiff
    from sync.reference.rules.findings import Rejection
    from sync.reference.rules.plan import KindPlan

    plan = KindPlan(kind="suppliers", strategy="none",
                    diff=KindDiff("suppliers", deletes=("S9",), unchanged=4, held=("S3",)),
                    source_count=4, remote_count=6, calls=0, targeted_calls=0, refresh_calls=1,
                    rejected=1, deletes_suppressed=1, kept=("S3",))
    bad = Rejection("suppliers", "S3", 3, "IsoCode", "bad_iso_country", "IsoCode 'ZZ' ...",
                    "d" * 64)
    warn = Rejection("suppliers", "S4", 4, "Email", "bad_email", "...", "e" * 64, "warn")
    replay = Replay(plan, (bad,), (warn,), 1, 2, 3, "partial")
    print_ = Fingerprint("s", "t", "r", 5, quarantine_hash(()), replay)
    assert Fingerprint.from_record(json.loads(json.dumps(print_.record()))) == print_
    damaged = print_.record()
    damaged["replay"]["rejected"][0]["colour"] = "red"
    assert Fingerprint.from_record(damaged) is None
    sends = print_.record()
    sends["replay"]["plan"]["calls"] = 1
    assert Fingerprint.from_record(sends) is None
    creates = print_.record()
    creates["replay"]["plan"]["diff"]["creates"] = ["S5"]
    assert Fingerprint.from_record(creates) is None
    old = Fingerprint.from_record({"source": "s", "settings": "t", "remote": "r", "count": 5})
    assert old is not None
    assert old.quarantine == NO_QUARANTINE
    assert old.replay is None


def test_a_dry_run_hashes_the_source_only_when_the_fast_path_may_apply(config: Config) -> None:
    """The fingerprint serves the fast path and is kept by a run that applies: a dry run over
    an empty state (read back, planned whole) does not compute it; one over a kept state does,
    and takes the fast path; a --full dry run does not."""
    planned = sync(config, dry_run=True)
    first = next(k for k in planned.kinds if k.kind == "suppliers")
    assert "fingerprint" not in first.stages
    assert planned.plan is not None
    plan = planned.plan.kind("suppliers")
    assert plan is not None
    assert len(plan.diff.creates) == 150
    applied = next(k for k in sync(config).kinds if k.kind == "suppliers")
    assert "fingerprint" in applied.stages
    assert suppliers(sync(config, dry_run=True)) == (True, 150, 0)
    full = next(k for k in sync(config, dry_run=True, full=True).kinds if k.kind == "suppliers")
    assert "fingerprint" not in full.stages
    assert full.unchanged == 150
