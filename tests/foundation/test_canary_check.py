"""The suite-wide canary check finds a leaked secret (so its silence means something)."""

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.fixtures import canary


@pytest.fixture
def isolated_hits() -> list[str]:
    """The check's hit list, restored after the test so planted leaks don't fail the session."""
    saved = list(canary._HITS)
    canary._HITS.clear()
    yield canary._HITS
    canary._HITS[:] = saved


def test_leak_in_an_output_file_is_found(isolated_hits: list[str]) -> None:
    """A canary inside a log or database file is reported; a key file holding it is not."""
    secret = canary.register("canary-token-for-the-check-itself")
    # Outside pytest's temp dir: the session-end scan must not see this planted leak.
    root = Path(tempfile.mkdtemp(prefix="canary-check-"))
    try:
        (root / "run.log").write_text(f"calling with {secret}\n")
        (root / "api_key").write_text(secret)
        canary._scan_files(root)
    finally:
        shutil.rmtree(root)
    assert isolated_hits == [f"file {root / 'run.log'}"]


def test_leak_in_captured_output_is_found(isolated_hits: list[str]) -> None:
    """A canary in a test's captured log section is reported with the test's id."""
    report = pytest.TestReport(
        nodeid="t::x", location=("t", 0, "x"), keywords={}, outcome="passed", longrepr=None,
        when="call", sections=[("Captured log call", f"key={canary.CANARY_KEY}")])
    canary.pytest_runtest_logreport(report)
    assert isolated_hits == ["t::x (call): Captured log call"]
