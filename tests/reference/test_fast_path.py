"""The no-op fast path: a kind whose source, settings and remote copy did not change since its
last clean run is not normalised or diffed; anything that changed takes the full path."""

from __future__ import annotations

import gc
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from sync.foundation.config import Config
from sync.reference.engine import CompanyResult
from sync.reference.fingerprint import FINGERPRINTS, Fingerprint, remote_hash
from sync.state.store import StateStore
from tests.reference.support import COMPANY, erp_execute, sync


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
    assert suppliers(sync(config)) == (True, 150, 0)


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
