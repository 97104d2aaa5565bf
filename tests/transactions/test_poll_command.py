"""``icsync poll`` as a real subprocess: summary table, JSON, exit codes, no secret in output."""

from __future__ import annotations

import pytest

from sync.foundation.config import Config, parse_settings
from sync.foundation.errors import ConfigError, ExitCode
from sync.transactions.run import posting_companies
from tests.fixtures.sandbox import CANARY_KEY
from tests.transactions.world import WEBHOOK_TOKEN, TxWorld, run_poll


@pytest.mark.slow
def test_table_problems_and_exit_4(world: TxWorld) -> None:
    """A refused invoice shows in the table with its reason, exit 4 while it stays quarantined;
    new work still lands; the key and the webhook token appear nowhere in the output."""
    world.write_config(supplier_check=True)
    world.approved(2)
    bad = world.approved(1, supplier="SUP-404")[0]
    run = run_poll(world.config_path, extra=())
    assert run.returncode == 4, run.stderr[-2000:]
    assert "quarantined" in run.stdout
    assert "partial" in run.stdout
    assert bad in run.stdout
    assert "SUP-404" in run.stdout
    for secret in (CANARY_KEY, WEBHOOK_TOKEN):
        assert secret not in run.stdout + run.stderr
    world.approved(1)
    again = run_poll(world.config_path, extra=("--json", "--company", "acme"))
    summary = again.summary()
    assert summary["exit_code"] == 4  # the refused invoice is still quarantined
    assert summary["companies"][0]["created"] == 1
    assert "icsync errors list" in summary["companies"][0]["problems"][-1]
    assert len(world.erp_entries()) == 3


def test_unknown_company_is_exit_2(world: TxWorld) -> None:
    """Naming a company that is not configured is a usage error naming the configured ones."""
    world.write_config()
    run = run_poll(world.config_path, extra=("--company", "nope"))
    assert run.returncode == 2
    assert "acme" in run.stderr
    assert "nope" in run.stderr


def test_companies_without_a_sink_are_left_out() -> None:
    """Polling every company skips reference-only ones; none posting at all is exit 2."""
    base = {"icompleat": {"base_url": "http://127.0.0.1:1", "tenant_id": "t"},
            "sinks": {"erp": {"type": "memory"}}}
    both = Config(parse_settings({**base, "companies": [
        {"name": "ref-only", "company_id": "c1"},
        {"name": "posting", "company_id": "c2", "sink": "erp"},
        {"name": "no-types", "company_id": "c3", "sink": "erp", "transaction_types": []}]}))
    assert [c.name for c in posting_companies(both)] == ["posting"]
    none = Config(parse_settings({**base, "companies": [{"name": "a", "company_id": "c1"}]}))
    with pytest.raises(ConfigError) as caught:
        posting_companies(none)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "sink" in str(caught.value)
