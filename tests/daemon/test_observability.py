"""deploy/observability: the Grafana dashboard and the Prometheus rules speak of real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.daemon.metrics import Metrics

KIT = Path(__file__).resolve().parents[2] / "deploy" / "observability"
METRIC = re.compile(r"\bicsync_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",), "summary": ("_sum", "_count")}


def exported() -> set[str]:
    """Every sample name the daemon's /metrics can carry."""
    names = set()
    for family in Metrics().registry.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, query) for every target of every panel."""
    doc = json.loads((KIT / "icsync-dashboard.json").read_text(encoding="utf-8"))
    return [(p["title"], t["expr"]) for p in doc["panels"] for t in p["targets"]]


def rule_queries() -> list[tuple[str, str]]:
    """(alert name, expression) for every rule."""
    doc: Any = yaml.safe_load((KIT / "icsync-rules.yml").read_text(encoding="utf-8"))
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def test_every_dashboard_query_names_an_exported_metric() -> None:
    """Each panel's query names at least one metric, and only metrics the daemon exports."""
    names, queries = exported(), panel_queries()
    assert len(queries) >= 10
    for title, expr in queries:
        used = set(METRIC.findall(expr))
        assert used, f"panel {title!r} names no icsync metric"
        assert used <= names, f"panel {title!r}: {sorted(used - names)} are not exported"


def test_every_rule_names_exported_metrics() -> None:
    """Each alert rule reads metrics the daemon exports (or Prometheus's own ``up``)."""
    names = exported()
    for alert, expr in rule_queries():
        used = set(METRIC.findall(expr))
        assert used or "up{" in expr, alert
        assert used <= names, f"rule {alert}: {sorted(used - names)} are not exported"


def test_an_exported_name_that_does_not_exist_is_caught() -> None:
    """The check can fail: a made-up metric is not among the exported names."""
    assert "icsync_job_runs_total" in exported()
    assert "icsync_made_up_total" not in exported()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    """promtool (Debian's prometheus package) checks the rules file."""
    done = subprocess.run(["promtool", "check", "rules", str(KIT / "icsync-rules.yml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
