"""The values the IBAN, BIC and VAT checks found good are kept from run to run: each value is
judged by the libraries once, whatever the number of runs, with the same findings."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import structlog

from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.config import Config
from sync.reference import checked
from sync.reference.rules.checks import CHECKED_RULES
from tests.reference.rules.support import judged
from tests.reference.support import COMPANY, erp_execute, sync


def kept(state: Path) -> dict[str, tuple[str, list[str]]]:
    """What the state database keeps for the suppliers: check -> (rules, values)."""
    with closing(sqlite3.connect(state)) as db:
        rows = db.execute("SELECT name, rules, good FROM checked_values "
                          "WHERE company = ? AND kind = 'suppliers'", (COMPANY,)).fetchall()
    out = {}
    for name, rules, good in rows:
        values = checked.decode(bytes(good))
        out[name] = (rules, sorted(values.to_pylist()) if values is not None else [])
    return out


def state_of(config: Config) -> Path:
    return Path(config.settings.state.url.removeprefix("sqlite:///"))


def touch(erp: Path) -> None:
    """A change elsewhere in the source (a phone number), so the next run compares rows."""
    erp_execute(erp, "UPDATE suppliers SET phone = phone || '0' WHERE rowid = 1")


def test_each_value_is_judged_once_across_runs(sandbox: SandboxServer, config: Config,
                                               erp: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run judges every distinct value and keeps the good ones under the current
    rules; the next (the source changed elsewhere) judges none of them again and reaches
    the same findings; a new IBAN is the only value judged after it appears."""
    calls = judged(monkeypatch)
    first = sync(config)
    assert first.outcome in ("ok", "partial"), first.to_dict()
    first_calls = list(calls)
    stored = kept(state_of(config))
    assert set(stored) == {"iban", "bic", "vat"}
    assert all(rules == CHECKED_RULES for rules, _ in stored.values())
    assert len(stored["iban"][1]) == len({v for n, v in first_calls if n == "iban"})
    assert len(stored["iban"][1]) >= 20
    calls.clear()
    touch(erp)
    second = sync(config)
    assert second.outcome == first.outcome
    assert calls == []
    assert [r.key for r in (second.plan.rejected if second.plan else ())] == [
        r.key for r in (first.plan.rejected if first.plan else ())]
    new = "DE89370400440532013000"
    erp_execute(erp, "UPDATE suppliers SET iban = ? WHERE rowid = 2", (new,))
    sync(config)
    assert calls == [("iban", new)]
    assert new in kept(state_of(config))["iban"][1]


def test_values_kept_under_other_rules_or_unreadable_are_judged_again(
        sandbox: SandboxServer, config: Config, erp: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Values kept by another version of the libraries are judged again (and kept anew under
    this version's rules); a kept stream that cannot be read is logged, judged again and
    replaced; the run goes on in both cases."""
    sync(config)
    calls = judged(monkeypatch)
    state = state_of(config)
    with closing(sqlite3.connect(state)) as db, db:
        db.execute("UPDATE checked_values SET rules = 'python-stdnum 0.1; schwifty 0.1; 1' "
                   "WHERE name = 'iban'")
        db.execute("UPDATE checked_values SET good = x'00ff' WHERE name = 'bic'")
    touch(erp)
    with structlog.testing.capture_logs() as logs:
        result = sync(config)
    assert result.outcome in ("ok", "partial"), result.to_dict()
    judged_again = {n for n, _ in calls}
    assert judged_again == {"iban", "bic"}
    assert any(e["event"].startswith("kept check values unreadable") and e["check"] == "bic"
               for e in logs)
    assert all(rules == CHECKED_RULES and values for rules, values in kept(state).values())


def test_a_dry_run_uses_the_kept_values_and_writes_none(
        sandbox: SandboxServer, config: Config, erp: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any run applied, a dry run judges every value and keeps nothing (a dry run
    writes nothing); after one, a dry run judges no value again and leaves them as kept."""
    calls = judged(monkeypatch)
    sync(config, dry_run=True)
    assert calls
    assert kept(state_of(config)) == {}
    sync(config)
    before = kept(state_of(config))
    assert set(before) == {"iban", "bic", "vat"}
    calls.clear()
    new = "DE89370400440532013000"
    erp_execute(erp, "UPDATE suppliers SET iban = ? WHERE rowid = 2", (new,))
    sync(config, dry_run=True)
    assert calls == [("iban", new)]
    assert kept(state_of(config)) == before
