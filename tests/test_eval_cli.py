"""``nowcast eval`` end to end, and the file matching under it.

Observed scans: a 4 x 4 block cell (50 dBZ on level 0, 40 dBZ on level 1) moving
two pixels east every five minutes on a 2 x 16 x 16 grid whose two first rows have
no coverage. A persistence forecast (the scan at issue time) at +5 min overlaps the
observed cell by half (8 of 16 pixels a level): CSI = 8 / (8 + 8 + 8) = 1/3; at
+10 min the cells are disjoint: CSI = 0.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from conftest import make_grid
from nowcast.cli import main
from nowcast.radar import Scan, write_forecast_set, write_scan
from nowcast.verification import find_forecasts, index_observations

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
GRID = make_grid(nz=2, ny=16, nx=16)
N_SCANS = 6


def cell(k: int) -> np.ndarray:
    vol = np.zeros((2, 16, 16), dtype=np.float32)
    x0 = 2 + 2 * k
    vol[0, 6:10, x0 : x0 + 4] = 50.0
    vol[1, 6:10, x0 : x0 + 4] = 40.0
    vol[:, :2, :] = np.nan  # no coverage
    return vol


@pytest.fixture
def case(tmp_path):
    """Scans at T0 + 5k min (k < 6); persistence issued at k = 0..4, leads 5, 10 min
    (forecast layout); perfect forecasts issued at k = 0 and 2 (valid-time layout)."""
    obs, out = tmp_path / "obs", tmp_path / "out"
    for k in range(N_SCANS):
        write_scan(Scan(T0 + timedelta(minutes=5 * k), cell(k), GRID), obs)
    for k in range(5):
        write_forecast_set(
            out, T0 + timedelta(minutes=5 * k), [300, 600],
            np.stack([cell(k), cell(k)]), GRID, method="persistence",
        )
    for k in (0, 2):
        write_forecast_set(
            out, T0 + timedelta(minutes=5 * k), [300, 600],
            np.stack([cell(k + 1), cell(k + 2)]), GRID, method="perfect",
            layout="valid_time",
        )
    return obs, out


def _eval(capsys, *argv):
    status = main(["eval", "--log-format", "json", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _block(text: str, title: str) -> dict[tuple[str, str], list[str]]:
    """Rows of one contingency block keyed by (lead, threshold)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        lead, unit, thr, *rest = line.split()
        rows[(f"{lead} {unit}", thr)] = rest
    return rows


def test_persistence_scores_by_hand(case, tmp_path, capsys):
    obs, out = case
    report = tmp_path / "scores.json"
    status, text, err = _eval(
        capsys, "--obs", str(obs), "--forecasts", str(out), "--pool", "1",
        "--method", "persistence", "--json", str(report),
    )
    assert status == 0, err
    assert "Matched 9 of 10 forecast files (5 issue times)" in text
    assert "1 had no observation" in text
    three_d = _block(text, "Contingency scores, 3D voxels")
    # n, hits, misses, false alarms, CSI, POD, FAR, bias
    assert three_d[("+5 min", "20")] == [
        "5", "80", "80", "80", "0.333", "0.500", "0.500", "1.000",
    ]
    assert three_d[("+5 min", "45")][:4] == ["5", "40", "40", "40"]
    assert three_d[("+10 min", "35")] == [
        "4", "0", "128", "128", "0.000", "0.000", "1.000", "1.000",
    ]
    composite = _block(text, "Contingency scores, composite")
    assert composite[("+5 min", "35")][:5] == ["5", "40", "40", "40", "0.333"]

    data = json.loads(report.read_text())
    assert data["files"] == {
        "found": 10, "matched": 9, "no_observation": 1, "unreadable": 0,
        "other_grid": 0,
    }
    assert data["method"] == "persistence" and data["pool"] == 1
    rows = {
        (r["lead_s"], r["kind"], r["threshold"]): r for r in data["scores"]["table"]
    }
    r = rows[(300, "3d", 20.0)]
    assert (r["hits"], r["misses"], r["false_alarms"]) == (80, 80, 80)
    # 2 levels x 14 covered rows x 16 = 448 voxels a forecast, 48 of them in a table
    assert r["correct_negatives"] == 5 * (448 - 48)
    assert r["csi"] == pytest.approx(1 / 3)
    # MAE: 16 voxels wrong by 50 and 16 by 40, over 448 covered voxels
    assert r["mae"] == pytest.approx((16 * 50 + 16 * 40) / 448)
    fss = {(f["lead_s"], f["window"]): f["fss"] for f in data["scores"]["fss_table"]}
    assert fss[(300, 1)] == pytest.approx(0.5)  # 16 wrong pixels over 16 + 16
    assert fss[(600, 1)] == pytest.approx(0.0)
    assert fss[(600, 21)] > fss[(600, 5)] > 0.0


def test_perfect_forecasts_in_the_valid_time_layout(case, tmp_path, capsys):
    obs, out = case
    report = tmp_path / "perfect.json"
    status, text, err = _eval(
        capsys, "--obs", str(obs), "--forecasts", str(out), "--pool", "1",
        "--method", "perfect", "--json", str(report),
    )
    assert status == 0, err
    assert "Matched 4 of 4 forecast files" in text
    data = json.loads(report.read_text())
    for row in data["scores"]["table"]:
        assert row["csi"] == 1.0 and row["mae"] == 0.0
        assert row["misses"] == 0 and row["false_alarms"] == 0
    assert {r["lead_s"] for r in data["scores"]["table"]} == {300, 600}
    assert all(f["fss"] == 1.0 for f in data["scores"]["fss_table"])


def test_pooling_scores_on_the_model_grid(case, tmp_path, capsys):
    obs, out = case
    report = tmp_path / "pooled.json"
    status, text, err = _eval(
        capsys, "--obs", str(obs), "--forecasts", str(out), "--pool", "2",
        "--method", "persistence", "--thresholds", "35", "--json", str(report),
    )
    assert status == 0, err
    assert "Pooling 2 x 2" in text
    data = json.loads(report.read_text())
    assert data["scores"]["thresholds"] == [35.0]
    r = next(
        r for r in data["scores"]["table"] if (r["lead_s"], r["kind"]) == (300, "3d")
    )
    # 2 x 2 pooled cells, shifted one pooled pixel: 2 hits, 2 misses, 2 false
    # alarms a level and forecast; 2 levels x 7 x 8 = 112 pooled voxels.
    assert (r["hits"], r["misses"], r["false_alarms"]) == (20, 20, 20)
    assert r["correct_negatives"] == 5 * (112 - 12)


def test_forecasts_written_on_the_pooled_grid_are_compared_as_they_are(
    tmp_path, capsys
):
    obs, out = tmp_path / "obs", tmp_path / "out"
    pooled_grid = GRID.pooled(2)
    for k in range(2):
        write_scan(Scan(T0 + timedelta(minutes=5 * k), cell(k), GRID), obs)
    from nowcast.radar import pool

    write_forecast_set(
        out, T0, [300], pool(cell(1), 2)[np.newaxis], pooled_grid, method="perfect"
    )
    status, text, err = _eval(
        capsys, "--obs", str(obs), "--forecasts", str(out), "--pool", "2"
    )
    assert status == 0, err
    row = _block(text, "Contingency scores, 3D voxels")[("+5 min", "35")]
    assert row[4] == "1.000"


def test_errors_are_one_line_and_status_1(case, tmp_path, capsys):
    obs, out = case
    status, _, err = _eval(
        capsys, "--obs", str(tmp_path / "nope"), "--forecasts", str(out)
    )
    assert status == 1 and "nope: observation directory does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = _eval(capsys, "--obs", str(obs), "--forecasts", str(empty))
    assert status == 1 and "no forecast files" in err
    status, _, err = _eval(
        capsys, "--obs", str(obs), "--forecasts", str(out), "--method", "titan"
    )
    assert status == 1
    assert "no forecast made by method 'titan'" in err
    assert "perfect, persistence" in err
    # Observations of another day: nothing matches.
    other = tmp_path / "other"
    write_scan(Scan(T0 + timedelta(days=3), cell(0), GRID), other)
    status, _, err = _eval(capsys, "--obs", str(other), "--forecasts", str(out))
    assert status == 1 and "nothing to score" in err
    with pytest.raises(SystemExit):
        main(["eval", "--obs", str(obs), "--forecasts", str(out), "--thresholds", "x"])


def test_tolerance_matches_scans_off_the_nominal_time(tmp_path, capsys):
    obs, out = tmp_path / "obs", tmp_path / "out"
    write_scan(Scan(T0, cell(0), GRID), obs)
    write_scan(Scan(T0 + timedelta(seconds=320), cell(1), GRID), obs)
    write_forecast_set(out, T0, [300], cell(1)[np.newaxis], GRID, method="perfect")
    base = ["--obs", str(obs), "--forecasts", str(out), "--pool", "1"]
    status, text, _ = _eval(capsys, *base)
    assert status == 0 and "Matched 1 of 1" in text
    status, _, err = _eval(capsys, *base, "--tolerance", "10")
    assert status == 1 and "1 had no observation" in err


def test_matching_finds_both_layouts_and_scans(case):
    obs, out = case
    entries = find_forecasts(out)
    layouts = [e.layout for e in entries]
    assert layouts.count("forecast") == 10 and layouts.count("valid_time") == 4
    first = next(e for e in entries if e.layout == "forecast")
    assert first.issue_time == T0 and first.lead_s == 300
    assert first.valid_time == T0 + timedelta(minutes=5)
    index = index_observations(obs)
    assert len(index) == N_SCANS and not index.unreadable
    when = T0 + timedelta(minutes=5)
    assert index.find(when) == index.find(when + timedelta(seconds=30), 60)
    assert index.find(when + timedelta(seconds=30)) is None
    assert index.find(when + timedelta(seconds=150), 100) is None


def test_mixed_methods_are_named(case, capsys):
    obs, out = case
    status, text, err = _eval(
        capsys, "--obs", str(obs), "--forecasts", str(out), "--pool", "1"
    )
    assert status == 0, err
    assert "Matched 13 of 14 forecast files" in text
    assert "methods: perfect (4), persistence (9)" in text
    assert "several methods are scored together" in text
