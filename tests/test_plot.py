"""``nowcast plot``: quicklooks of a forecast set and skill charts, drawn for real.

Observed scans: a 4 x 4 cell (50 dBZ on level 0, 40 dBZ on level 1) moving two
pixels east every five minutes on a 2 x 16 x 16 grid whose two first rows have no
coverage (as in ``test_eval_cli``). The PNGs are read back with matplotlib and
checked for the palette's colours; the figures' panels, titles and lines are
checked through matplotlib's object API.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from matplotlib.image import imread  # matplotlib is in the test extra

from conftest import make_grid
from nowcast.cli import main
from nowcast.radar import Scan, pool, write_forecast_set, write_scan

from nowcast.plotting import PlotError
from nowcast.plotting.quicklook import find_set, quicklook_figure, read_panels
from nowcast.plotting.reflectivity import composite
from nowcast.plotting.skill_chart import (
    curves_from_eval,
    curves_from_store,
    skill_figure,
)

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
GRID = make_grid(nz=2, ny=16, nx=16)
RED_50 = (0xfd, 0x00, 0x00)  # the 50-55 dBZ class
NO_COVERAGE = (0xd0, 0xd0, 0xd0)


def cell(k: int) -> np.ndarray:
    vol = np.zeros((2, 16, 16), dtype=np.float32)
    x0 = 2 + 2 * k
    vol[0, 6:10, x0 : x0 + 4] = 50.0
    vol[1, 6:10, x0 : x0 + 4] = 40.0
    vol[:, :2, :] = np.nan
    return vol


@pytest.fixture
def case(tmp_path):
    """Scans at T0 + 5k min (k < 5); persistence sets issued at k = 0, 1 and a
    perfect set at k = 0, leads 5 and 10 min."""
    obs, out = tmp_path / "obs", tmp_path / "out"
    for k in range(5):
        write_scan(Scan(T0 + timedelta(minutes=5 * k), cell(k), GRID), obs)
    for k in (0, 1):
        write_forecast_set(out, T0 + timedelta(minutes=5 * k), [300, 600],
                           np.stack([cell(k), cell(k)]), GRID, method="persistence")
    perfect = tmp_path / "perfect"
    write_forecast_set(perfect, T0, [300, 600], np.stack([cell(1), cell(2)]), GRID,
                       method="perfect", model="models/perfect.pt")
    return obs, out, perfect


def _colour_count(png, rgb) -> int:
    image = imread(png)[..., :3]
    target = np.asarray(rgb, dtype=float) / 255.0
    return int((np.abs(image - target).max(axis=-1) < 0.02).sum())


def _plot(capsys, *argv):
    status = main(["plot", "--log-format", "json", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_quicklook_png_shows_forecast_and_verifying_scans(case, tmp_path, capsys):
    obs, out, _ = case
    png = tmp_path / "pictures" / "set.png"
    status, text, err = _plot(capsys, "--forecasts", str(out), "--obs", str(obs),
                              "-o", str(png))
    assert status == 0, err
    assert "Set issued 2024-06-01 12:05:00 UTC by persistence: 2 leads, 2 with" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _colour_count(png, RED_50) > 50  # the 50 dBZ cell, in its class colour
    assert _colour_count(png, NO_COVERAGE) > 50  # the rows the radar did not see
    assert not list(png.parent.glob(".*"))  # no temporary left beside it


def test_quicklook_panels_titles_and_values(case):
    obs, out, _ = case
    fset = find_set(out / "20240601" / "g_120000")
    assert fset.issue_time == T0 and fset.method == "persistence"
    assert [lead.lead_s for lead in fset.leads] == [300, 600]
    panels = read_panels(fset, obs, tolerance_s=0)
    for panel, k in zip(panels, (1, 2)):
        np.testing.assert_array_equal(panel.forecast, composite(cell(0)))
        np.testing.assert_array_equal(panel.observed, composite(cell(k)))
        assert panel.observed_time == T0 + timedelta(minutes=5 * k)
    level1 = read_panels(fset, obs, tolerance_s=0, level_m=float(GRID.z_m[1]))
    assert np.nanmax(level1[0].forecast) == 40.0
    figure = quicklook_figure(fset, panels)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["t+5 min, valid 12:05", "t+10 min, valid 12:10",
                      "observed 12:05", "observed 12:10"]
    assert "issued 2024-06-01 12:00 UTC" in figure.get_suptitle()
    assert "persistence" in figure.get_suptitle()
    ax = figure.axes[0]
    x0, x1, y0, y1 = ax.get_images()[0].get_extent()
    assert (x1 - x0, y1 - y0) == pytest.approx((16.0, 16.0))  # 16 pixels of 1 km
    assert figure.axes[-1].get_ylabel() == "reflectivity (dBZ)"  # the colour bar


def test_quicklook_newest_set_issue_choice_and_missing_scans(case, tmp_path, capsys):
    obs, out, _ = case
    assert find_set(out).issue_time == T0 + timedelta(minutes=5)
    assert find_set(out, T0).issue_time == T0
    status, _, err = _plot(capsys, "--forecasts", str(out), "--issue",
                           "2024-06-01T13:00:00Z", "-o", str(tmp_path / "x.png"))
    assert status == 1
    assert str(out) in err and "no forecast set issued at 2024-06-01 13:00:00" in err
    assert "2 sets from 2024-06-01 12:00 to 2024-06-01 12:05" in err
    assert not (tmp_path / "x.png").exists()
    # the scan valid at 12:30 (lead 10 min of the 12:20 set) does not exist
    write_forecast_set(out, T0 + timedelta(minutes=20), [300, 600],
                       np.stack([cell(4), cell(4)]), GRID, method="persistence")
    panels = read_panels(find_set(out), obs, tolerance_s=60)
    assert [p.observed is None for p in panels] == [True, True]
    assert [p.observed_note for p in panels] == ["no scan", "no scan"]


def test_quicklook_pools_the_scan_to_a_pooled_forecast(case, tmp_path):
    obs, _, _ = case
    pooled = tmp_path / "pooled"
    write_forecast_set(pooled, T0, [300], pool(cell(0), 2)[None], GRID.pooled(2),
                       method="persistence")
    (panel,) = read_panels(find_set(pooled), obs, tolerance_s=0)
    assert panel.forecast.shape == (8, 8)
    np.testing.assert_allclose(panel.observed, composite(pool(cell(1), 2)))


def test_quicklook_errors_name_the_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = _plot(capsys, "--forecasts", str(empty),
                           "-o", str(tmp_path / "a.png"))
    assert status == 1 and f"{empty}: no forecast files" in err
    status, _, err = _plot(capsys, "--forecasts", str(tmp_path / "nope"),
                           "-o", str(tmp_path / "a.png"))
    assert status == 1 and "does not exist" in err


def _eval_json(capsys, obs, forecasts, path, method=None):
    argv = ["eval", "--log-format", "json", "--obs", str(obs), "--forecasts",
            str(forecasts), "--pool", "1", "--tolerance", "0", "--json", str(path)]
    if method:
        argv += ["--method", method]
    assert main(argv) == 0
    capsys.readouterr()
    return path


def test_skill_chart_from_eval_reports(case, tmp_path, capsys):
    obs, out, perfect = case
    reports = [
        _eval_json(capsys, obs, out, tmp_path / "p.json", "persistence"),
        _eval_json(capsys, obs, perfect, tmp_path / "perfect.json"),
    ]
    curves = curves_from_eval(reports)
    assert curves.labels == ["persistence", "perfect"]
    # persistence: half the 4 x 4 cell overlaps at +5 min (CSI 1/3), none at +10
    assert curves.values[("persistence", "composite", 35.0)] == pytest.approx(
        {300: 1 / 3, 600: 0.0})
    assert curves.values[("perfect", "composite", 35.0)] == {300: 1.0, 600: 1.0}
    figure = skill_figure(curves, thresholds=[35, 45])
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [
        "CSI composite >= 35 dBZ", "CSI composite >= 45 dBZ"]
    lines = {line.get_label(): line for line in panels[0].get_lines()}
    np.testing.assert_allclose(lines["persistence"].get_xdata(), [5.0, 10.0])
    np.testing.assert_allclose(lines["persistence"].get_ydata(), [1 / 3, 0.0])
    np.testing.assert_allclose(lines["perfect"].get_ydata(), [1.0, 1.0])
    png = tmp_path / "skill.png"
    status, text, err = _plot(capsys, "--eval", *map(str, reports), "--thresholds",
                              "35", "-o", str(png))
    assert status == 0, err
    assert "Methods: persistence, perfect" in text
    assert imread(png).shape[1] > 300


def test_skill_chart_from_the_metrics_store(tmp_path, capsys):
    from nowcast.store import MetricsStore
    from nowcast.verification import ScoreAccumulator

    db = tmp_path / "state" / "nowcast.sqlite"
    with MetricsStore(db) as store:
        for method, fc in (("persistence", cell(0)), ("titan", cell(1))):
            acc = ScoreAccumulator([35.0], 35.0, [1])
            acc.add(300, fc, cell(1))
            store.record_accumulator(T0, method, None, acc)
    curves = curves_from_store(db)
    assert curves.labels == ["titan", "persistence"]
    assert curves.values[("titan", "3d", 35.0)] == {300: 1.0}
    assert curves.values[("persistence", "3d", 35.0)] == pytest.approx({300: 1 / 3})
    assert curves_from_store(db, since=T0 + timedelta(minutes=1)).values == {}
    status, _, err = _plot(capsys, "--store", str(db), "--kind", "3d",
                           "-o", str(tmp_path / "s.png"))
    assert status == 0, err
    status, _, err = _plot(capsys, "--store", str(db), "--since",
                           "2024-06-01T13:00:00Z", "-o", str(tmp_path / "t.png"))
    assert status == 1 and "no CSI to draw" in err
    status, _, err = _plot(capsys, "--store", str(tmp_path / "none.sqlite"),
                           "-o", str(tmp_path / "u.png"))
    assert status == 1 and "no metrics store" in err


def test_skill_chart_bad_reports_are_named(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    for path, reason in ((bad, "not a JSON report"),
                         (other, "not a nowcast eval --json report"),
                         (tmp_path / "gone.json", "no such file")):
        with pytest.raises(PlotError, match=reason) as info:
            curves_from_eval([path])
        assert str(path) in str(info.value)
    status, _, err = _plot(capsys, "--eval", str(bad), "-o", str(tmp_path / "a.png"))
    assert status == 1 and str(bad) in err


def test_without_matplotlib_the_command_says_how_to_install(case, tmp_path, capsys,
                                                             monkeypatch):
    _, out, _ = case
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    status, _, err = _plot(capsys, "--forecasts", str(out),
                           "-o", str(tmp_path / "a.png"))
    assert status == 1
    assert "pip install 'nowcast[plot]'" in err


def test_unwritable_output_is_named(case, tmp_path, capsys):
    _, out, _ = case
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "a.png"  # a folder that is a file
    status, _, err = _plot(capsys, "--forecasts", str(out), "-o", str(target))
    assert status == 1 and str(target) in err
