"""Fixtures of the engine tests: a sample ERP and a configuration pointing at the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import create_erp
from sync.foundation.config import Config
from tests.reference.support import make_config


@pytest.fixture
def erp(tmp_path: Path) -> Path:
    """A sample ERP with 150 suppliers (two chunks of 100 for a refresh)."""
    return create_erp(tmp_path / "erp.db", suppliers_count=150)


@pytest.fixture
def config(sandbox: SandboxServer, erp: Path, tmp_path: Path) -> Config:
    """A configuration syncing the sample ERP into the sandbox, state in tmp_path."""
    return make_config(sandbox.url, erp, tmp_path / "state.db")
