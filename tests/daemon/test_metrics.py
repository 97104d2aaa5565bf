"""The Prometheus registry: families, labels, and seconds since the last success."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from sync.daemon.metrics import Metrics


@dataclass(frozen=True)
class _Call:
    route: str
    status: int | None
    seconds: float
    outcome: str


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_api_calls_by_route_and_status() -> None:
    """Each client call is counted by route, status and outcome; no answer is status none."""
    metrics = Metrics()
    metrics.on_call(_Call("suppliers.list", 200, 0.02, "ok"))
    metrics.on_call(_Call("suppliers.list", 200, 0.03, "ok"))
    metrics.on_call(_Call("suppliers.edit", None, 5.0, "unknown"))
    samples = _samples(metrics)
    ok = ("icsync_api_calls_total", (("outcome", "ok"), ("route", "suppliers.list"),
                                     ("status", "200")))
    none = ("icsync_api_calls_total", (("outcome", "unknown"), ("route", "suppliers.edit"),
                                       ("status", "none")))
    assert samples[ok] == 2
    assert samples[none] == 1


def test_runs_records_and_missed() -> None:
    """Runs, durations, record outcomes and missed slots are exposed per company and job."""
    metrics = Metrics()
    metrics.record_run("uk", "reference", "ok", 1.5)
    metrics.record_counts("uk", "reference", "suppliers",
                          {"created": 3, "edited": 0, "strategy": "refresh", "flag": True})
    metrics.missed.labels("uk", "reference").inc(2)
    samples = _samples(metrics)
    job = (("company", "uk"), ("job", "reference"))
    assert samples[("icsync_job_runs_total", (*job, ("outcome", "ok")))] == 1
    assert samples[("icsync_job_duration_seconds_count", job)] == 1
    assert samples[("icsync_records_total", (*job, ("kind", "suppliers"),
                                             ("outcome", "created")))] == 3
    assert not any(k[0] == "icsync_records_total" and ("outcome", "edited") in k[1]
                   for k in samples)
    assert samples[("icsync_job_missed_runs_total", job)] == 2


def test_gauges_are_replaced_not_accumulated() -> None:
    """Quarantine and backlog gauges show the latest snapshot only."""
    metrics = Metrics()
    metrics.set_quarantine([("uk", "suppliers", 4)])
    metrics.set_quarantine([("uk", "tax_codes", 1)])
    metrics.set_backlog([("uk", "posted", 2)])
    samples = _samples(metrics)
    assert ("icsync_quarantine_size", (("company", "uk"), ("kind", "suppliers"))) not in samples
    assert samples[("icsync_quarantine_size", (("company", "uk"), ("kind", "tax_codes")))] == 1
    assert samples[("icsync_ledger_backlog", (("company", "uk"), ("status", "posted")))] == 2


def test_seconds_since_last_success() -> None:
    """A success an hour ago reads as about 3600 seconds, with its wall-clock stamp."""
    import time

    metrics = Metrics()
    wall = time.time() - 3600
    metrics.mark_success("uk", "suppliers", wall=wall)
    samples = _samples(metrics)
    labels = (("company", "uk"), ("kind", "suppliers"))
    assert 3599 <= samples[("icsync_seconds_since_last_success", labels)] < 3700
    assert samples[("icsync_last_success_timestamp_seconds", labels)] == wall


def test_two_registries_do_not_share_state() -> None:
    """Each daemon (and each test) has its own registry."""
    first, second = Metrics(), Metrics()
    first.record_run("uk", "reference", "ok", 1)
    assert not any(k[0] == "icsync_job_runs_total" for k in _samples(second))
