"""Logs: secrets masked, and a replaced standard error never breaks logging."""

import io
import sys

import pytest

from sync.foundation.logs import configure, get_logger
from sync.foundation.secrets import REDACTOR


def test_lines_follow_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured while one stderr is installed, logging writes to whichever is current later."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure("json", "info")
    first.close()  # what a finished test's capture does
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    get_logger("t").info("still_logging")
    assert "still_logging" in second.getvalue()


def test_registered_secret_is_masked_in_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered secret is masked in the event and in bound values, as JSON."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    REDACTOR.add("log-canary-secret-42")
    configure("json", "info")
    get_logger("t").warning("calling with log-canary-secret-42", url="x?k=log-canary-secret-42")
    assert "log-canary-secret-42" not in out.getvalue()
    assert "**********" in out.getvalue()
