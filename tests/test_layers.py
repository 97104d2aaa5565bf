"""The layer contracts hold on the tree, and a forbidden import makes them fail, naming it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=240, env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def _copy_tree(tmp_path: Path) -> Path:
    for name in ("sync", "connectors"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.timeout(600)
def test_the_tree_keeps_every_layer_contract() -> None:
    """lint-imports passes on the project as it is."""
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout


@pytest.mark.timeout(600)
@pytest.mark.parametrize("line", ["import sqlalchemy", "import asyncio",
                                  "from connectors.icompleat import routes",
                                  "from sync.runtime import context"])
def test_an_impure_import_in_the_rules_breaks_the_build(tmp_path: Path, line: str) -> None:
    """A rules module importing IO, connectors or a higher layer fails, naming the import."""
    tree = _copy_tree(tmp_path)
    target = tree / "sync/reference/rules/diff.py"
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n",
                      encoding="utf-8")
    done = _lint(tree)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout
    assert "sync.reference.rules.diff" in done.stdout
