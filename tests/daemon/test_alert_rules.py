"""The alert conditions as pure functions, and the [alerts] / console configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sync.daemon.alerts import RunFacts, check_run, check_state, enabled, is_failed_run
from sync.daemon.channels import build_channels
from sync.foundation.config import AlertsConfig, Config, parse_settings
from sync.foundation.errors import ConfigError
from sync.foundation.secrets import REDACTOR
from sync.state.rows import LedgerRow, QuarantineRow, RunRow
from sync.transactions.rules import journal_conflict

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def run(outcome: str, error: str | None = None, **kinds: dict[str, int]) -> RunRow:
    """A finished run row of acme's transactions job."""
    return RunRow(1, "acme", "transactions", None, NOW, NOW, outcome, {"kinds": kinds}, error)


def tx(tx_id: str, status: str, *, minutes: float = 0, error: str | None = None) -> LedgerRow:
    """A ledger row of company id C1 created ``minutes`` ago."""
    at = NOW - timedelta(minutes=minutes)
    return LedgerRow("C1", tx_id, "INV", status, None, 0, None, error, at, at)


def keys(check: Any) -> list[str]:
    """The keys of a check's findings."""
    return [f.key for f in check.findings]


def test_guard_block_only_for_a_blocked_reference_run() -> None:
    """A blocked reference run is a guard block; an ok one covers the key and finds nothing."""
    blocked = check_run(RunFacts("acme", "reference", "blocked", "source is empty"),
                        AlertsConfig())
    assert keys(blocked) == ["guard_block:acme"]
    ok = check_run(RunFacts("acme", "reference", "ok"), AlertsConfig())
    assert "guard_block:acme" in ok.scope
    assert keys(ok) == []


def test_streak_needs_n_failed_runs_and_ignores_rows_merely_held() -> None:
    """Two failures make a streak; a partial run that only quarantined rows does not."""
    alerts = AlertsConfig(failing_runs_count=2)
    failing = [run("failed", "boom"), run("partial", "500s", transactions={"failed": 1})]
    assert keys(check_run(RunFacts("acme", "transactions", "failed", "boom", failing),
                          alerts)) == ["failing:acme:transactions"]
    held = [run("partial", "1 quarantined", transactions={"quarantined": 1})] * 2
    assert keys(check_run(RunFacts("acme", "transactions", "partial", "x", held), alerts)) == []
    assert not is_failed_run(run("ok"))


def test_lease_loss_says_nothing_else_and_skips_say_nothing() -> None:
    """A lost lease is only a lease alert; a skipped run neither starts nor clears anything."""
    lost = check_run(RunFacts("acme", "reference", "lease_lost", "taken"), AlertsConfig())
    assert lost.scope == ("lease_lost:acme:reference",)
    assert keys(lost) == ["lease_lost:acme:reference"]
    assert check_run(RunFacts("acme", "reference", "skipped"), AlertsConfig()).scope == ()


def test_state_checks_quarantine_journal_and_backlog() -> None:
    """Digest items per row; the journal alarm is its own condition; backlog by age."""
    records = [QuarantineRow(1, "acme", "suppliers", "S1", None, "bad_iban", "iban", "IBAN",
                             "validation", NOW, NOW, "open")]
    ledger = [tx("t1", "quarantined", error="ERP refused"),
              tx("t2", "quarantined", error=journal_conflict("t2", "J1", "J9")),
              tx("t3", "seen", minutes=90), tx("t4", "written_back", minutes=500)]
    check = check_state("acme", "C1", records, ledger, NOW, AlertsConfig())
    found = {f.key: f for f in check.findings}
    assert found["quarantine:acme"].items == ("suppliers/S1/validation", "transactions/t1")
    assert found["journal_mismatch:acme"].items == ("t2",)
    assert "90 minutes" in found["ledger_backlog:acme"].detail
    young = check_state("acme", "C1", [], [tx("t3", "seen", minutes=5)], NOW, AlertsConfig())
    assert keys(young) == []


def test_switched_off_conditions_neither_start_nor_clear() -> None:
    """enabled() drops the keys and findings of a condition switched off."""
    check = check_run(RunFacts("acme", "reference", "blocked"), AlertsConfig())
    off = enabled(check, AlertsConfig(guard_block=False))
    assert "guard_block:acme" not in off.scope
    assert keys(off) == []


def test_alert_urls_are_masked_and_a_bad_one_names_the_key(tmp_path: Path) -> None:
    """Every part of a channel URL that may be a secret is masked; nonsense names the key."""
    urls = tmp_path / "urls"
    urls.write_text("json://ops:pa55word-xyz@127.0.0.1:9/hook/T0KEN-abcdef123\n", "utf-8")
    config = Config(parse_settings({"alerts": {"urls_file": str(urls)}}))
    assert REDACTOR("pa55word-xyz and T0KEN-abcdef123") == "********** and **********"
    assert "pa55word" not in build_channels(config.alert_urls)[0].name
    urls.write_text("nonsense://what\n", "utf-8")
    with pytest.raises(ConfigError, match=r"alerts\.urls_file"):
        build_channels(Config(parse_settings({"alerts": {"urls_file": str(urls)}})).alert_urls)


def test_console_actions_need_the_console_and_a_long_token(tmp_path: Path,
                                                           monkeypatch: Any) -> None:
    """console_actions without console, or without a 16-character token, is refused."""
    monkeypatch.delenv("ICSYNC_CONSOLE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="console_actions"):
        parse_settings({"service": {"console_actions": True}})
    settings = parse_settings({"service": {"console": True, "console_actions": True}})
    with pytest.raises(ConfigError, match=r"service\.console_token_file"):
        Config(settings)
    token = tmp_path / "token"
    token.write_text("a-console-token-0123456789\n", "utf-8")
    service = {"console": True, "console_actions": True, "console_token_file": str(token)}
    config = Config(parse_settings({"service": service}))
    assert config.console_token is not None
