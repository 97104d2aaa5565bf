"""Fixtures for transaction tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.transactions.world import TxWorld


@pytest.fixture
def world(sandbox: Any, tmp_path: Path) -> TxWorld:
    """A fresh transaction world on a running sandbox."""
    return TxWorld(sandbox, tmp_path)
