"""Lagrangian intensity trend: the tendency along the motion, its advection, the
per-lead fit, the model forecaster applying a checkpoint's fit, and
bench/fit_trend.py writing one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nowcast.config import load_config
from nowcast.forecasters import get_forecaster
from nowcast.forecasters.lead_smoothing import carry_smoothing
from nowcast.forecasters.lead_trend import (
    advected_trends,
    apply_trend,
    fit_trend,
    lagrangian_trend,
    scales_px,
    trend_displacements,
)
from nowcast.forecasters.model import ModelForecaster
from nowcast.model.checkpoint import load_checkpoint, save_checkpoint
from test_model_forecaster import TIMES, cell_frames, make_checkpoint

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def growing_cell(t, size=64, speed=2, start=30.0, growth=4.0, y0=32, x0=12):
    """A 9 x 9 px cell moving ``speed`` px/step along x, gaining ``growth`` dB a
    step from ``start``; no echo (0 dBZ) around it."""
    f = np.zeros((size, size), np.float32)
    x = x0 + speed * t
    f[y0 - 4 : y0 + 5, x - 4 : x + 5] = start + growth * t
    return f


def flow_x(speed, size=64):
    flow = np.zeros((2, size, size), np.float32)
    flow[0] = speed
    return flow


def test_the_trend_is_the_growth_along_the_motion_not_the_motion_itself():
    comp = np.stack([growing_cell(t) for t in range(2)])
    trend = lagrangian_trend(comp, flow_x(2))
    # inside the cell where it is now: +4 dB a step; no echo far away: 0
    np.testing.assert_allclose(trend[30:35, 12:17], 4.0, atol=1e-4)
    assert trend[5, 50] == 0.0 and trend.dtype == np.float32
    # a steady cell moving as the flow says has no trend at all
    steady = np.stack([growing_cell(t, growth=0.0) for t in range(2)])
    np.testing.assert_allclose(lagrangian_trend(steady, flow_x(2)), 0.0, atol=1e-4)
    # the same steady cell with no motion given would look like growth ahead
    # and decay behind: the flow is what makes it a Lagrangian trend
    wrong = lagrangian_trend(steady, flow_x(0))
    assert wrong.max() > 10 and wrong.min() < -10
    # clipped and NaN-safe
    hot = comp.copy()
    hot[1, 30:35, 12:17] = 69.0
    hot[0, :3, :3] = np.nan
    out = lagrangian_trend(hot, flow_x(2), clip_db=15.0)
    assert out.max() == pytest.approx(15.0) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="t >= 2"):
        lagrangian_trend(comp[:1], flow_x(2))


def test_the_trend_moves_with_the_echoes_lead_by_lead():
    trend = np.zeros((64, 64), np.float32)
    trend[30:35, 20:25] = 4.0
    moved = advected_trends(trend, flow_x(2), [0.0, 2.0], 3)
    assert set(moved) == {0.0, 2.0} and moved[0.0].shape == (3, 64, 64)
    for k in range(3):  # lead k + 1: 2 (k + 1) px further along x
        cols = np.nonzero(moved[0.0][k][32] > 2.0)[0]
        assert cols.min() == 20 + 2 * (k + 1) and cols.max() == 24 + 2 * (k + 1)
    # the displacements computed once and given serve the same
    disp = trend_displacements(flow_x(2), 3)
    assert disp.shape == (3, 2, 64, 64)
    given = advected_trends(trend, flow_x(2), [0.0], 3, displacements=disp)
    np.testing.assert_array_equal(given[0.0], moved[0.0])
    comp = np.stack([growing_cell(t) for t in range(2)])
    np.testing.assert_array_equal(
        lagrangian_trend(comp, flow_x(2), displacements=disp),
        lagrangian_trend(comp, flow_x(2)),
    )
    blurred = moved[2.0][0]
    assert blurred.max() < 4.0 and (blurred > 0.1).sum() > (moved[0.0][0] > 0.1).sum()
    assert scales_px([8000.0, 16000.0], 2000.0) == [4.0, 8.0]
    with pytest.raises(ValueError):
        scales_px([8000.0], 0.0)


def test_apply_adds_each_leads_weight_on_every_level_and_keeps_coverage():
    dbz = np.full((3, 2, 8, 8), 30.0, np.float32)
    dbz[:, :, 0, 0] = np.nan
    leads = np.full((3, 8, 8), 4.0, np.float32)
    out = apply_trend(dbz, leads, [0.0, 1.0, 20.0], floor=0.0, ceiling=70.0)
    np.testing.assert_array_equal(out[0], dbz[0])  # weight 0: exactly as it was
    assert np.nanmax(np.abs(out[1] - 34.0)) == 0.0  # both levels
    assert np.nanmax(out[2]) == 70.0  # clipped at the ceiling
    assert np.isnan(out[:, :, 0, 0]).all()
    # growth and decay weighted apart: growth 0 leaves a growing field as it was
    mixed = np.stack([leads[0], -leads[0], leads[0]])
    split = apply_trend(dbz[:, 0], mixed, [0.0, 0.0, 0.5], [2.0, 2.0, 0.0])
    assert split[0, 1, 1] == 30.0 and split[1, 1, 1] == 22.0 and split[2, 1, 1] == 32.0
    shorter = apply_trend(dbz[:, 0], leads, [1.0], floor=0.0)  # 2D; leads beyond stay
    assert shorter[0, 1, 1] == 34.0 and shorter[2, 1, 1] == 30.0
    decay = apply_trend(dbz[:, 0], -leads * 10, [1.0, 1.0, 1.0], floor=0.0)
    assert np.nanmin(decay) == 0.0  # never below the floor


def _window(growth, rng, last=34.0):
    """Forecast (persistence moved along the motion, as extrapolation does),
    observation (the cell keeps growing by ``growth`` a step from ``last`` dBZ at
    the last input: with the default, above 35 from the first lead on), the
    inputs, the flow."""
    kw = {"growth": growth, "start": last - 7 * growth}
    past = np.stack([growing_cell(t, **kw) for t in range(6, 8)])[:, None]
    future = np.stack([growing_cell(t, **kw) for t in range(8, 15)])[:, None]
    last = past[-1, 0]
    forecast = np.stack(
        [np.roll(last, 2 * (k + 1), axis=1) for k in range(7)]
    )[:, None]
    noise = rng.normal(0, 0.1, forecast.shape).astype(np.float32)
    return forecast + noise, future, past, flow_x(2), 2000.0


def test_fit_carries_growth_on_and_leaves_a_steady_storm_alone():
    rng = np.random.default_rng(3)
    # the cell crosses 35 dBZ if its growth goes on: the trend helps
    grow = fit_trend([_window(2.0, rng) for _ in range(2)], [4000.0, 16000.0],
                     [0.5, 1.0, 2.0, 3.0])
    assert grow.windows == 2 and len(grow.weight) == 7
    assert grow.scale_m in (4000.0, 16000.0) and len(grow.scale_scores) == 2
    assert all(w > 0 for w in grow.weight[1:])
    assert all(s["chosen"] >= s["none"] for s in grow.scores)
    assert grow.scores[-1]["chosen"] > grow.scores[-1]["none"] + 0.2
    # no growth: nothing to carry on, every weight 0
    steady = fit_trend([_window(0.0, rng) for _ in range(2)], [4000.0], [1.0, 2.0])
    assert steady.weight == [0.0] * 7
    # a cell that decays steadily and one whose growth stops at once: the fit
    # carries the decay on and not the growth
    stops = []
    for _ in range(2):
        forecast, future, past, flow, dx = _window(2.0, rng)
        future = np.stack([np.roll(past[-1, 0], 2 * (k + 1), axis=1) for k in range(7)])
        stops.append((forecast, future[:, None], past, flow, dx))
    decays = [_window(-2.0, rng, last=38.0) for _ in range(2)]  # below 35 at t+10
    split = fit_trend(stops + decays, [0.0], [1.0, 2.0])  # 0: the trend unblurred
    assert split.weight == [0.0] * 7 and all(w > 0 for w in split.decay_weight[1:])
    d = grow.to_dict()
    assert d["scale_m"] == grow.scale_m and d["weight"] == grow.weight
    assert d["decay_weight"] == grow.decay_weight
    with pytest.raises(ValueError, match="no verification windows"):
        fit_trend([])


def test_the_model_forecaster_applies_the_checkpoints_trend(tmp_path, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    state = load_checkpoint(ckpt)
    weight = [0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    state["lead_trend"] = {"scale_m": 4000.0, "weight": weight}
    fitted = save_checkpoint(tmp_path / "fitted.pt", state)
    frames = cell_frames()
    frames[-1] += np.where(frames[-1] > 20, 5.0, 0.0).astype(np.float32)  # growth
    kw = {"device": "cpu", "dbz_floor": 0.0, "cell_prior": False}
    plain = ModelForecaster(ckpt, **kw).forecast(frames, TIMES, 7, dx_m=2000.0)
    fc = ModelForecaster(fitted, **kw)
    res = fc.forecast(frames, TIMES, 7, dx_m=2000.0)
    assert res.info["lead_trend"] == {
        "scale_m": 4000.0, "weight": weight, "decay_weight": weight,
    }
    assert "post_seconds" in res.info
    np.testing.assert_array_equal(res.dbz[0], plain.dbz[0])  # weight 0
    gain = np.nanmax(res.dbz[-1] - plain.dbz[-1])
    assert gain > 1.0  # the growing cell grows on
    assert (np.isnan(res.dbz) == np.isnan(plain.dbz)).all()
    off = ModelForecaster(fitted, trend=False, **kw)
    np.testing.assert_array_equal(
        off.forecast(frames, TIMES, 7, dx_m=2000.0).dbz, plain.dbz
    )
    assert off.info["lead_trend"] is None
    assert ModelForecaster(fitted, network=False, **kw).trend_weight == []
    monkeypatch.setenv("NOWCAST_MODEL__TREND", "false")
    monkeypatch.setenv("NOWCAST_DAEMON__DEVICE", "cpu")
    settings = load_config(None)
    assert get_forecaster("model", settings, checkpoint=fitted).trend_weight == []
    # a retrained candidate takes production's trend with its smoothing
    candidate = make_checkpoint(tmp_path / "candidate.pt")
    assert carry_smoothing(fitted, candidate)
    carried = load_checkpoint(candidate)["lead_trend"]
    assert carried["weight"] == weight and carried["carried_from"] == str(fitted)


def test_fit_trend_script_writes_the_fit_into_a_copy(tmp_path):
    ckpt = make_checkpoint(tmp_path / "tiny.pt", levels=(3,))
    out = tmp_path / "fitted.pt"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "fit_trend.py"),
            "--model", str(ckpt),
            "--synthetic", "2",
            "--regimes", "multicell",
            "--levels", "3",
            "--size", "48",
            "--scales", "4000,16000",
            "--weights", "0.5,1",
            "--out", str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 windows" in proc.stdout and "| t+7 |" in proc.stdout
    fit = load_checkpoint(out)["lead_trend"]
    assert len(fit["weight"]) == 7 and set(fit["weight"]) <= {0.0, 0.5, 1.0}
    assert len(fit["decay_weight"]) == 7 and set(fit["decay_weight"]) <= {0.0, 0.5, 1.0}
    assert fit["scale_m"] in (4000.0, 16000.0)
    assert fit["sources"] == {"synthetic multicell": 2} and fit["windows"] == 2
    before, after = load_checkpoint(ckpt), load_checkpoint(out)
    for key, tensor in before["model"].items():  # the weights are untouched
        assert torch.equal(tensor, after["model"][key])
    assert "lead_trend" not in before
