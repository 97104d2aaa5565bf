"""The demo's operations chapter, run after the tour's first sync as `icsync demo` runs it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import structlog

from sync.cli import demo
from sync.demo import tour
from sync.demo.operations import chapter_operations


def test_operations_chapter_opens_the_console_and_shows_an_alert_and_its_clear(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The console answers at its URL; the guard alert and its clear reach the receiver."""
    monkeypatch.setattr(tour, "CHAPTERS", [tour.chapter_first_sync, chapter_operations])
    monkeypatch.setenv("COLUMNS", "200")  # panels unbroken, whatever width the runner reports
    try:
        assert demo.run(argparse.Namespace(workdir=tmp_path, fast=True)) == 0
    finally:
        structlog.reset_defaults()
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "The console answers at" in out
    assert "With [service] console = true" in out
    assert "Overview · icsync" in out
    assert "alert received: [icsync] demo: the guard blocked the reference sync" in out
    assert "alert received: [icsync] cleared: demo: the guard blocked" in out
    key = (tmp_path / "icompleat_api_key").read_text(encoding="utf-8").strip()
    assert key not in out
