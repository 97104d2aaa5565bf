"""A whole run with clean text columns held as Arrow (as a large source's are) sends, stores
and plans exactly what a run with object columns does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import sync.reference.rules.normalise as normalise_module
from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import apply_changes, create_erp
from tests.reference.support import last_seq, make_config, remote, sync, writes

# The ids iCompleat gives new custom fields (in their value calls' paths): new each time.
_ID = re.compile(r"/customfield/([^/]+/){2}[0-9a-f-]{36}$")
KINDS = ("suppliers", "accountcodes", "taxcodes", "currencycodes", "deliverysites", "customfields")


def _flow(sandbox: SandboxServer, tmp_path: Path, name: str) -> list[Any]:
    """First load, a dry run after the ERP changed, the changes applied, then a no-op run:
    what each left in the sandbox, what it sent and what it planned."""
    erp = create_erp(tmp_path / f"{name}.db", suppliers_count=240)
    config = make_config(sandbox.url, erp, tmp_path / f"{name}-state.db")
    seen: list[Any] = []
    for step in ("load", "dry", "apply", "none"):
        if step == "dry":
            apply_changes(erp)
        seq = last_seq(sandbox)
        result = sync(config, dry_run=step == "dry")
        plan = result.plan.to_dict() if result.plan is not None else None
        sent = [(w.method, w.route, _ID.sub("<id>", w.path), w.status)
                for w in writes(sandbox, seq)]
        held = {kind: [{f: v for f, v in r.items() if f != "Id"} for r in remote(sandbox, kind)]
                for kind in KINDS}
        seen.append((step, result.outcome, plan, sent, held))
    return seen


def test_a_run_with_text_held_as_arrow_equals_one_with_objects(
        sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kind, through a first load (complete sets), a dry run and an applying run
    after edits, a new, a removed and an invalid supplier, and a no-op: the same outcomes,
    plans (field-level edits included), calls, and records iCompleat holds after each."""
    objects = _flow(sandbox, tmp_path, "objects")
    sandbox.reset()
    monkeypatch.setattr(normalise_module, "ARROW_TEXT_ROWS", 0)
    held = _flow(sandbox, tmp_path, "held")
    assert held == objects
    steps = {s[0]: s for s in objects}
    assert steps["load"][3]
    assert steps["apply"][3]
    assert not steps["none"][3]
    assert any(k["edits"] for k in steps["dry"][2]["kinds"])
