"""The console's overview page, rendered from plain data (no server, no browser)."""

from __future__ import annotations

from datetime import UTC, datetime

from sync.daemon import pages
from sync.state.rows import CapabilityRow

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def _data(**extra: object) -> dict[str, object]:
    return {"latest": [], "charts": {}, "quarantine": {}, "backlog": {}, "leases": [],
            "alerts": [], "capabilities": [], **extra}


def test_learned_capabilities_are_listed_escaped() -> None:
    """Every learned route answer is a row: unsupported ones with their status, text escaped."""
    rows = [CapabilityRow("t", "suppliers.edit", False, 405, "<b>Method Not Allowed</b>", NOW),
            CapabilityRow("t", "transaction.journal", True, None, None, NOW)]
    html = pages.overview(_data(learned=rows))
    assert 'data-testid="capabilities"' in html
    assert "suppliers.edit" in html
    assert "unsupported (405)" in html
    assert "&lt;b&gt;Method Not Allowed&lt;/b&gt;" in html
    assert "<b>Method" not in html


def test_no_capability_learned_says_so() -> None:
    """Before any refusal the section says every call answered as the contract says."""
    html = pages.overview(_data(learned=[]))
    assert "nothing refused with 404/405" in html
