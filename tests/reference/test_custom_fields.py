"""Custom fields end to end: definitions first, then each changed field's values as its own set."""

from __future__ import annotations

from pathlib import Path

from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.config import Config
from tests.reference.support import erp_execute, last_seq, make_config, remote, sync, writes


def fields(sandbox: SandboxServer) -> dict[str, dict[str, object]]:
    """Active fields by name, with their values as {Code: Name}."""
    return {f["Name"]: {**f, "Values": {v["Code"]: v["Name"] for v in f.get("Values") or []}}
            for f in remote(sandbox, "custom_fields") if f.get("Active", True)}


def test_value_changes_resend_that_fields_list(sandbox: SandboxServer, config: Config,
                                               erp: Path) -> None:
    """A renamed, an added and a removed value: one POST of the field's whole list. Removing 1
    of 8 values (12.5%) is past the guard's 10%: first only the rename and the addition go,
    then --allow-deletes lets the removal through."""
    sync(config, kinds=["custom_fields"])
    erp_execute(erp, "UPDATE analysis_values SET name = 'Finance & Tax' WHERE code = 'D01'")
    erp_execute(erp, "INSERT INTO analysis_values VALUES ('Department','D09','Legal II','List',0)")
    erp_execute(erp, "DELETE FROM analysis_values WHERE code = 'D02'")
    seq = last_seq(sandbox)
    blocked = sync(config, kinds=["custom_fields"])
    assert blocked.outcome == "blocked"
    assert [e.route for e in writes(sandbox, seq)] == ["customfield.values"]
    values = fields(sandbox)["Department"]["Values"]
    assert values["D01"] == "Finance & Tax"
    assert "D09" in values
    assert "D02" in values
    seq = last_seq(sandbox)
    result = sync(config, kinds=["custom_fields"], allow_deletes=True)
    assert [e.route for e in writes(sandbox, seq)] == ["customfield.values"]
    assert "D02" not in fields(sandbox)["Department"]["Values"]
    kind = result.kinds[0]
    assert (kind.created, kind.edited, kind.deleted, kind.outcome) == (0, 0, 1, "ok")


def test_definition_change_is_a_put(sandbox: SandboxServer, config: Config, erp: Path) -> None:
    """Mandatory turned on for a field: one PUT of the definition, values untouched."""
    sync(config, kinds=["custom_fields"])
    erp_execute(erp, "UPDATE analysis_values SET mandatory = 1")
    seq = last_seq(sandbox)
    sync(config, kinds=["custom_fields"])
    assert [e.route for e in writes(sandbox, seq)] == ["customfield.edit"]
    assert fields(sandbox)["Department"]["Mandatory"] is True


def test_new_field_then_removed_field(sandbox: SandboxServer, config: Config, erp: Path) -> None:
    """A second field is created (definition, then values); removing it deletes it."""
    sync(config, kinds=["custom_fields"])
    erp_execute(erp, "INSERT INTO analysis_values VALUES ('Project','P1','Apollo','List',0)")
    erp_execute(erp, "INSERT INTO analysis_values VALUES ('Project','P2','Gemini','List',0)")
    seq = last_seq(sandbox)
    sync(config, kinds=["custom_fields"])
    assert [e.route for e in writes(sandbox, seq)] == ["customfields.create",
                                                      "customfield.values"]
    assert fields(sandbox)["Project"]["Values"] == {"P1": "Apollo", "P2": "Gemini"}
    erp_execute(erp, "DELETE FROM analysis_values WHERE field = 'Project'")
    seq = last_seq(sandbox)
    sync(config, kinds=["custom_fields"], allow_deletes=True)  # 2 of 10 values: past 10%
    assert [e.route for e in writes(sandbox, seq)] == ["customfield.delete"]
    assert "Project" not in fields(sandbox)


def test_ignore_policy_keeps_removed_values(sandbox: SandboxServer, erp: Path,
                                            tmp_path: Path) -> None:
    """Delete policy "ignore": a value gone from the ERP stays in iCompleat's list."""
    config = make_config(sandbox.url, erp, tmp_path / "ignore.db",
                         delete_policy={"custom_fields": "ignore"})
    sync(config, kinds=["custom_fields"])
    erp_execute(erp, "DELETE FROM analysis_values WHERE code = 'D02'")
    erp_execute(erp, "INSERT INTO analysis_values VALUES ('Department','D09','Audit','List',0)")
    sync(config, kinds=["custom_fields"])
    values = fields(sandbox)["Department"]["Values"]
    assert "D02" in values
    assert values["D09"] == "Audit"
    seq = last_seq(sandbox)
    sync(config, kinds=["custom_fields"])
    assert writes(sandbox, seq) == []
