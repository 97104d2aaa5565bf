"""The demo's transactions chapter, run after the tour's first sync as `icsync demo` runs it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import structlog

from sync.cli import demo
from sync.demo import tour
from sync.demo.transactions import chapter_transactions


def test_transactions_chapter_tells_the_truth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Invoices land with journal numbers, the unknown supplier is quarantined, the pushed one
    is answered twice with one number; the tour exits 0."""
    monkeypatch.setattr(tour, "CHAPTERS", [tour.chapter_first_sync, chapter_transactions])
    try:
        assert demo.run(argparse.Namespace(workdir=tmp_path, fast=True)) == 0
    finally:  # the tour points the logs at this test's captured stderr: undo that
        structlog.reset_defaults()
    out = capsys.readouterr().out
    assert "NEWCO-01" in out
    assert "is not in the ERP" in out
    assert "A second pass posts nothing: 0 new ERP entries" in out
    assert "the ERP holds 1 entry for it" in out
    assert (tmp_path / "icsync-transactions.toml").exists()
    token = (tmp_path / "webhook_tokens").read_text(encoding="utf-8").strip()
    assert token not in out
