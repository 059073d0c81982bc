"""The daemon's Prometheus metrics from status contents, read back with
prometheus_client's parser (a running daemon: tests/faults/test_metrics_live.py)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from nowcast.daemon.metrics import Metrics


def _samples(metrics: Metrics) -> dict:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _status(taken, forecasts, issue, latency, csi=None) -> dict:
    return {
        "state": "running", "scans_taken": taken, "scans_rejected": 1,
        "duplicates": 0, "forecasts_written": forecasts, "errors": {"count": 2},
        "last_forecast": {"issue_time": issue, "latency_s": latency},
        "buffer": {"fill": 8, "capacity": 8}, "queue_length": 3,
        "last_scan": {"age_s": 42.0}, "step_seconds": 0.5,
        "model": {"method": "model", "name": "production.pt", "fallback_reason": None},
        "verification": {"csi": csi or {}},
    }


def test_counters_follow_the_status_and_latency_is_observed_once_a_set():
    m = Metrics()
    m.update(_status(8, 1, "2026-12-03T12:00:00Z", 3.0))
    m.update(_status(8, 1, "2026-12-03T12:00:00Z", 3.0))  # the same set, next step
    m.update(_status(9, 2, "2026-12-03T12:05:00Z", 25.0,
                     {"model": {"35.0": 0.4}, "persistence": {"35.0": 0.2}}))
    s = _samples(m)
    assert s[("nowcast_scans_taken_total", ())] == 9
    assert s[("nowcast_forecasts_total", ())] == 2
    assert s[("nowcast_errors_total", ())] == 2
    assert s[("nowcast_forecast_latency_seconds_count", ())] == 2
    assert s[("nowcast_forecast_latency_seconds_sum", ())] == 28.0
    assert s[("nowcast_forecast_latency_seconds_bucket", (("le", "5.0"),))] == 1
    assert s[("nowcast_forecast_latency_seconds_bucket", (("le", "30.0"),))] == 2
    assert s[("nowcast_csi", (("method", "model"), ("threshold", "35.0")))] == 0.4
    assert s[("nowcast_model_in_use", ())] == 1
    assert s[("nowcast_model_info", (("method", "model"), ("name", "production.pt")))] \
        == 1
    assert s[("nowcast_queue_length", ())] == 3


def test_a_restarted_count_never_makes_a_counter_go_down():
    m = Metrics()
    m.update(_status(9, 2, "a", 1.0))
    m.update(_status(3, 0, "b", 1.0))
    assert _samples(m)[("nowcast_scans_taken_total", ())] == 9
