"""The monitor's loaders and drawing helpers, without Textual, on real files."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from monitor_workspace import (
    ALIVE_PID,
    GONE_PID,
    LAST_SCAN,
    LEADS,
    NOW,
    counts,
    make_workspace,
    status_json,
)

from nowcast.errors import ScanError
from nowcast.monitor import fmt
from nowcast.monitor.data import Workspace, latest_scan, load_health
from nowcast.monitor.forecasts import FieldCache, find_forecast_set
from nowcast.monitor.store_loaders import load_skill, load_training, order_methods
from nowcast.monitor.image import RadarImage, block_max, fit
from nowcast.monitor.palette import COLOURS, classify, legend
from nowcast.monitor.plot import BrailleChart, HLine, Series, spark
from nowcast.monitor.daemon_status import judge_daemon, parse_status, read_status


@pytest.fixture(scope="module")
def up(tmp_path_factory) -> Workspace:
    settings = make_workspace(tmp_path_factory.mktemp("up"), daemon="up")
    return Workspace(settings, "config.toml")


@pytest.fixture
def empty(tmp_path) -> Workspace:
    return Workspace(make_workspace(tmp_path, daemon="none"), "config.toml")


# -- status.json -----------------------------------------------------------------------


def test_status_parses_the_daemon_keys():
    status = parse_status(status_json(123, NOW))
    assert status.pid == 123
    assert status.updated == NOW
    assert status.last_scan_time == LAST_SCAN
    assert (status.buffer_fill, status.buffer_capacity) == (8, 8)
    assert status.forecast_latency_s == pytest.approx(4.2)
    assert status.device == "cuda"
    assert status.checkpoint_time == datetime(2024, 5, 30, 2, 31, tzinfo=timezone.utc)
    assert status.queue_length == 0
    assert status.errors[0].kind == "rejected_scan"
    assert status.next_retrain == datetime(2024, 6, 2, 2, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "data",
    [{}, {"buffer": None, "last_scan": 3, "errors": "x", "pid": "1"}, [], None],
)
def test_status_parser_tolerates_missing_and_wrong_keys(data):
    status = parse_status(data)
    assert status.pid is None and status.last_scan_time is None
    assert status.buffer_fill is None and status.errors == ()


def test_read_status_reports_bad_files(tmp_path):
    assert read_status(tmp_path / "none.json") == (None, None)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    status, error = read_status(bad)
    assert status is None and "not valid JSON" in error


def test_judge_daemon():
    fresh = parse_status(status_json(ALIVE_PID, NOW - timedelta(seconds=5)))
    assert judge_daemon(fresh, NOW, 120).state == "up"
    stale = parse_status(status_json(GONE_PID, NOW - timedelta(hours=3)))
    verdict = judge_daemon(stale, NOW, 120)
    assert verdict.state == "down" and verdict.since == NOW - timedelta(hours=3)
    stuck = parse_status(status_json(ALIVE_PID, NOW - timedelta(hours=3)))
    assert judge_daemon(stuck, NOW, 120).state == "stalled"
    stopped = parse_status(status_json(ALIVE_PID, NOW, state="stopped"))
    assert judge_daemon(stopped, NOW, 120).state == "down"
    assert judge_daemon(None, NOW, 120).state == "never"


# -- health, skill, training -----------------------------------------------------------


def test_health_of_a_running_system(up):
    h = load_health(up, NOW)
    assert h.daemon.state == "up"
    assert h.last_scan_time == LAST_SCAN and h.scan_age_s == 60 and not h.scan_late
    assert h.last_scan_path == "scans/20240601/ncf_20240601_124000.nc"
    assert (h.buffer_fill, h.buffer_capacity) == (8, 8)
    assert h.forecast_method == "convlstm3d" and h.forecast_latency_s == 4.2
    assert h.device == "cuda" and h.queue_length == 0
    assert h.checkpoint == "models/demo3d.pt"
    # the same rejection in status.json and in the store is listed once, with its path
    assert len(h.errors) == 1
    assert h.errors[0].path.endswith("ncf_20240601_122000.nc")
    assert h.notes == ()


def test_health_warns_of_a_late_scan(up):
    later = NOW + timedelta(minutes=15)
    h = load_health(up, later)
    assert h.scan_late and h.scan_age_s == 16 * 60
    assert h.daemon.state == "stalled"  # the process (pid 1) is there, the file old


def test_health_of_an_empty_workspace_says_what_to_start(empty):
    h = load_health(empty, NOW)
    assert h.daemon.state == "never"
    text = " ".join(h.notes)
    assert "nowcast run --config config.toml" in text
    assert "No scans in scans/" in text
    assert h.last_scan_time is None and h.errors == ()


def test_skill_numbers_from_the_store(up):
    skill = load_skill(up, NOW)
    assert skill.methods == ("convlstm3d", "persistence", "titan")
    assert skill.leads_s == LEADS
    assert skill.thresholds == (20.0, 35.0, 45.0)
    hour, day, since = skill.periods
    assert hour.label == "last hour" and "since promotion" in since.label
    score = hour.scores[("convlstm3d", 300, 35.0, "3d")]
    c = counts("convlstm3d", 0, 35.0)
    assert score.csi == pytest.approx(c.hits / (c.hits + c.misses + c.false_alarms))
    assert score.pod == pytest.approx(0.8) and score.far == pytest.approx(0.2)
    assert hour.forecasts("convlstm3d", 35.0, "3d") == 1
    assert day.forecasts("convlstm3d", 35.0, "3d") == 24
    assert since.forecasts("convlstm3d", 35.0, "3d") == 31  # promoted 31 h before
    composite = hour.scores[("convlstm3d", 300, 35.0, "composite")]
    assert composite.csi == pytest.approx(0.5)
    series = skill.chart[("3d", "convlstm3d")]
    assert len(series) == 48 and not any(math.isnan(v) for v in series)
    newest = [counts("convlstm3d", i, 35.0) for i in range(7)]
    hits = sum(c.hits for c in newest)
    total = sum(c.hits + c.misses + c.false_alarms for c in newest)
    assert series[-1] == pytest.approx(hits / total)


def test_skill_without_a_store(empty):
    skill = load_skill(empty, NOW)
    assert skill.periods == () and "no metrics store" in skill.notes[0]


def test_methods_model_first_then_fallback_then_baselines(up):
    found = ["titan", "extrapolation", "persistence", "convlstm3d"]
    assert order_methods(found, up) == (
        "convlstm3d", "extrapolation", "persistence", "titan"
    )


def test_training_run_and_decision(up):
    t = load_training(up)
    assert t.run_id == 1 and t.status == "completed"
    assert len(t.epochs) == 30
    assert [p for _, p in t.phase_starts] == [1, 2, 3]
    assert [t.epochs[i].epoch for i, _ in t.phase_starts] == [0, 10, 20]
    assert t.terms == ("huber", "ssim")
    last = t.epochs[-1]
    assert last.val_loss > last.train_loss
    assert last.mean_csi35 == pytest.approx((0.59 + 0.39) / 2)
    assert t.decision.promoted and t.decision.candidate == "phase3_best.pt"


def test_training_without_runs(empty):
    assert "no metrics store" in load_training(empty).notes[0]


# -- forecast files --------------------------------------------------------------------


def test_forecast_set_names_the_files(up):
    fs = find_forecast_set(up)
    assert fs.issue_time == LAST_SCAN
    assert (fs.method, fs.model) == ("convlstm3d", "demo3d.pt")
    assert [f.lead_s for f in fs.leads] == list(LEADS)
    assert all(f.path is not None for f in fs.leads)
    assert fs.leads[2].path.name == "f_00000900.nc"
    assert fs.observed_time == LAST_SCAN
    # the forecast issued one lead before the newest scan, valid at its time
    assert [e.issue_time for e in fs.earlier] == [
        LAST_SCAN - timedelta(seconds=lead) for lead in LEADS
    ]
    assert all(e.valid_time == LAST_SCAN for e in fs.earlier)


def test_forecast_set_of_an_empty_workspace(empty):
    fs = find_forecast_set(empty)
    assert fs.issue_time is None and fs.observed_path is None
    assert "No forecasts in titan/nowcast/" in fs.notes[0]


def test_field_cache_reads_column_max_and_levels(up):
    fs = find_forecast_set(up)
    cache = FieldCache(maxsize=4)
    composite = cache.get(fs.observed_path)
    level = cache.get(fs.observed_path, 1)
    assert composite.level is None and level.level == 1 and composite.n_levels == 4
    assert composite.values.shape == (48, 48)
    assert np.all(composite.values >= level.values)
    assert composite.peak_dbz == pytest.approx(np.nanmax(composite.values))
    assert cache.get(fs.observed_path) is composite  # cached
    assert cache.get(fs.observed_path, 99).level == 3  # clamped to the top
    with pytest.raises(ScanError):
        cache.get(Path(fs.observed_path).with_name("missing.nc"))


def test_latest_scan_walks_newest_folder_first(tmp_path):
    names = (
        ("20240531", "a_20240531_235500.nc"),
        ("20240601", "ncf_20240601_000500.nc"),
        ("20240601", "notes.txt"),
        ("20240601", ".ncf_20240601_001000.nc"),  # a writer's temporary file
    )
    for day, name in names:
        (tmp_path / day).mkdir(exist_ok=True)
        (tmp_path / day / name).write_bytes(b"")
    when, path = latest_scan(tmp_path)
    assert path.name == "ncf_20240601_000500.nc"
    assert when == datetime(2024, 6, 1, 0, 5, tzinfo=timezone.utc)
    assert latest_scan(tmp_path / "missing") is None


# -- drawing ---------------------------------------------------------------------------


def test_palette_classes():
    values = np.array([np.nan, -5, 0, 4.9, 5, 34.9, 35, 75, 90], dtype=np.float32)
    assert classify(values).tolist() == [0, 1, 1, 1, 2, 7, 8, 16, 16]
    assert COLOURS[8] == "#fdf802"  # 35 dBZ is yellow
    assert "75" in legend().plain and legend().cell_len == 60


def test_block_max_keeps_small_cores():
    field = np.zeros((100, 100), dtype=np.float32)
    field[51, 37] = 60.0
    field[:10, :10] = np.nan
    small = block_max(field, 10, 10)
    assert small.shape == (10, 10)
    assert small[5, 3] == 60.0 and np.nanmax(small) == 60.0
    assert np.isnan(small[0, 0]) and np.isfinite(small[1, 1])
    assert block_max(np.ones((4, 4)), 8, 8).shape == (8, 8)


def test_fit_keeps_cells_square():
    assert fit(500, 500, 40, 17) == (34, 34)
    assert fit(500, 500, 30, 40) == (30, 30)
    rows, cols = fit(250, 500, 80, 20)
    assert (rows, cols) == (40, 80)


def test_radar_image_is_two_pixels_a_cell():
    field = np.zeros((4, 4), dtype=np.float32)
    field[0, :] = 50.0  # north row red
    lines = RadarImage(field, 4, 2).lines()
    assert len(lines) == 2
    first = lines[0][0]
    assert first.text == "\u2580" * 4
    assert first.style.color.name == COLOURS[classify(np.array([50.0]))[0]]


def test_braille_chart_and_spark():
    chart = BrailleChart(
        [Series([0.1, 0.5, math.nan, 0.9], "red")], 20, 5,
        y_range=(0, 1), hlines=[HLine(0.4, "blue")], x_labels=("a", "b", "c"),
    )
    lines = chart.lines()
    assert len(lines) == 5
    text = ["".join(s.text for s in line) for line in lines]
    assert text[0].startswith("    1┤") and text[-1].rstrip().endswith("c")
    assert any("0.4┤" in line for line in text)
    assert spark([1, 2, 3, 4], 4) == "\u2581\u2583\u2586\u2588"
    assert len(spark(range(100), 10)) == 10


def test_formatting():
    assert fmt.lead(900) == "t+15"
    assert fmt.age(NOW - timedelta(minutes=3), NOW) == "3 min ago"
    assert fmt.age(NOW + timedelta(hours=2), NOW) == "in 2.0 h"
    assert fmt.score(float("nan")) == "   -" and fmt.score(0.5) == "0.50"
    assert fmt.stamp(NOW, NOW) == "12:41:00Z"
    assert fmt.stamp(NOW - timedelta(days=1), NOW) == "2024-05-31 12:41Z"


def test_status_file_round_trip_with_the_daemon_writer(tmp_path):
    from nowcast.daemon import status_file as daemon_status

    path = tmp_path / "status.json"
    daemon_status.write_status(path, json.loads(json.dumps(status_json(7, NOW))))
    status, error = read_status(path)
    assert error is None and status.pid == 7 and status.version == 1


def test_a_broken_store_is_a_note_not_a_crash(empty):
    store = empty.settings.paths.store
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_bytes(b"not a database at all" * 100)
    h = load_health(empty, NOW)
    assert any("state/nowcast.sqlite" in note for note in h.notes)
    assert load_skill(empty, NOW).notes and load_training(empty).notes


def test_fields_compare_by_identity_not_by_array():
    """A view compares (title, field) tuples to skip redraws; arrays must not raise."""
    from datetime import datetime, timezone
    from pathlib import Path

    import numpy as np

    from nowcast.monitor.forecasts import Field

    t = datetime(2024, 6, 1, tzinfo=timezone.utc)
    a = Field(Path("a.nc"), t, None, np.zeros((4, 4)), 1, None, 0.0)
    b = Field(Path("a.nc"), t, None, np.zeros((4, 4)), 1, None, 0.0)
    assert ("x", a) != ("x", b)
    assert ("x", a) == ("x", a)
