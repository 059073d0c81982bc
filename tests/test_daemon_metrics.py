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


def test_rejections_are_counted_by_reason_labels_from_real_reader_errors(tmp_path):
    import numpy as np
    import pytest

    from conftest import make_grid
    from nowcast.daemon.reject_reasons import LABELS, reason_label
    from nowcast.errors import ScanError
    from nowcast.radar import Scan, read_scan, write_scan
    from datetime import datetime, timezone

    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage_20240601_120000.nc"
    garbage.write_bytes(b"not netCDF at all" * 10)
    nan = write_scan(
        Scan(datetime(2024, 6, 1, 12, tzinfo=timezone.utc),
             np.full((1, 8, 8), np.nan, dtype=np.float32), make_grid(1, 8, 8)),
        tmp_path / "nan",
    )
    hot = write_scan(
        Scan(datetime(2024, 6, 1, 12, tzinfo=timezone.utc),
             np.full((1, 8, 8), 5000.0, dtype=np.float32), make_grid(1, 8, 8)),
        tmp_path / "hot",
    )
    good = write_scan(
        Scan(datetime(2024, 6, 1, 12, tzinfo=timezone.utc),
             np.zeros((1, 8, 8), dtype=np.float32), make_grid(1, 8, 8)),
        tmp_path / "good",
    )
    cases = [(empty, {}, "unreadable"), (garbage, {}, "unreadable"),
             (nan, {}, "no_coverage"), (hot, {}, "not_dbz"),
             (good, {"expected_shape": (18, 0, 0)}, "grid"),
             (good, {"variable": "REFL"}, "no_reflectivity")]
    for path, kwargs, label in cases:
        with pytest.raises(ScanError) as info:
            read_scan(path, **kwargs)
        assert reason_label(info.value.reason) == label, info.value.reason
    assert reason_label("an outlier: 40 dBZ jump over 60 % of the grid") == "outlier"
    assert reason_label("scan time 2030-01-01 is 99 s ahead of the clock") == "future"
    assert reason_label("something new") == "other"
    m = Metrics()
    status = _status(9, 1, "x", 1.0)
    status["scans_rejected"] = 4
    status["scans_rejected_by_reason"] = {"unreadable": 2, "outlier": 1}
    m.update(status)
    s = _samples(m)
    assert s[("nowcast_scans_rejected_total", (("reason", "unreadable"),))] == 2
    assert s[("nowcast_scans_rejected_total", (("reason", "outlier"),))] == 1
    assert s[("nowcast_scans_rejected_total", (("reason", "other"),))] == 1  # 4 - 3
    assert {dict(k[1])["reason"] for k in s
            if k[0] == "nowcast_scans_rejected_total"} == set(LABELS)


def test_csi_of_the_last_hour_from_a_real_store(tmp_path):
    from datetime import datetime, timedelta, timezone

    import numpy as np

    from nowcast.store import MetricsReader, MetricsStore
    from nowcast.verification import ScoreAccumulator

    t0 = datetime(2024, 6, 1, 12, tzinfo=timezone.utc)
    obs = np.zeros((1, 8, 8), dtype=np.float32)
    obs[0, 2:6, 2:6] = 40.0
    half = np.roll(obs, 2, axis=2)  # half the cell: CSI 8 / 24
    db = tmp_path / "nowcast.sqlite"
    with MetricsStore(db) as store:
        for minutes, fc in ((-90, obs), (-30, half), (-10, obs)):  # first: too old
            acc = ScoreAccumulator([35.0], 35.0, [1])
            acc.add(300, fc, obs)
            store.record_accumulator(t0 + timedelta(minutes=minutes), "model", None,
                                     acc)
    with MetricsReader(db) as reader:
        rows = reader.skill(since=t0 - timedelta(hours=1))
    m = Metrics()
    m.update_recent_skill(rows)
    s = _samples(m)
    key = (("kind", "3d"), ("lead_seconds", "300"), ("method", "model"),
           ("threshold", "35"))
    assert s[("nowcast_csi_last_hour", key)] == (8 + 16) / (8 + 16 + 8 + 8)
    assert s[("nowcast_verified_last_hour", (("lead_seconds", "300"),
                                             ("method", "model")))] == 2
    m.update_recent_skill([])  # nothing verified in the hour: the series go
    assert not [k for k in _samples(m) if k[0] == "nowcast_csi_last_hour"]
