"""Lead-dependent smoothing: the blur, the per-lead fit, the model forecaster
applying a checkpoint's fit, and bench/fit_smoothing.py writing one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nowcast.config import load_config
from nowcast.errors import ForecasterError
from nowcast.forecasters import get_forecaster
from nowcast.forecasters.lead_smoothing import (
    carry_smoothing,
    fit_spread,
    sigmas_px,
    smooth_leads,
)
from nowcast.forecasters.model import ModelForecaster
from nowcast.model.checkpoint import load_checkpoint, save_checkpoint
from nowcast.verification import contingency
from test_model_forecaster import TIMES, cell_frames, make_checkpoint

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def cells(rng, n=6, size=64, offset=(0, 0)):
    """A no-echo field with ``n`` small 50 dBZ cells (3 x 3 px), shifted by offset."""
    f = np.full((size, size), -32.0, np.float32)
    for _ in range(n):
        y, x = rng.integers(8, size - 8, 2)
        y, x = y + offset[0], x + offset[1]
        f[y - 1 : y + 2, x - 1 : x + 2] = 50.0
    return f


def test_blur_keeps_z_coverage_levels_and_sigma_zero():
    rng = np.random.default_rng(0)
    lead = np.stack([cells(rng), np.full((64, 64), -32.0, np.float32)])  # 2 levels
    lead[1, :4, :4] = np.nan
    dbz = np.stack([lead, lead, lead])  # 3 leads
    out = smooth_leads(dbz, [0.0, 2.0], floor=-32.0)
    np.testing.assert_array_equal(out[0], dbz[0])  # sigma 0: exactly as it was
    np.testing.assert_array_equal(out[2], dbz[2])  # no sigma given: as it was
    z = lambda f: np.nansum(np.where(f > 0, 10 ** (np.nan_to_num(f) / 10), 0.0))
    assert z(out[1][0]) == pytest.approx(z(dbz[1][0]), rel=0.02)  # Z kept
    assert np.nanmax(out[1][0]) < 50.0  # the cores spread ...
    assert (out[1][0] >= 35).sum() > (dbz[1][0] >= 35).sum()  # ... over more pixels
    assert np.all(out[1][1][np.isfinite(out[1][1])] == -32.0)  # no blur across levels
    assert np.isnan(out[1][1][:4, :4]).all() and np.isfinite(out[1][0]).all()
    with pytest.raises(ValueError, match="dbz must be"):
        smooth_leads(dbz[0, 0], [1.0])


def test_sigma_grows_with_lead_time_in_metres():
    # 1 m/s at 5-minute steps: 300 m more each lead; 2 km pixels
    assert sigmas_px([1.0], 2000.0, 300.0, 3) == pytest.approx([0.15, 0.3, 0.45])
    # a 500 m grid at 10 minutes: the same spread is 8x the pixels
    assert sigmas_px([1.0], 500.0, 600.0, 1) == pytest.approx([1.2])
    assert sigmas_px([0.0, 2.0], 1000.0, 300.0, 3) == pytest.approx([0, 1.2, 1.8])
    assert sigmas_px([], 1000.0, 300.0, 3) == []
    with pytest.raises(ValueError, match="must be > 0"):
        sigmas_px([1.0], 0.0, 300.0, 2)


def test_fit_chooses_no_blur_for_a_perfect_forecast_and_blur_where_cells_drift():
    rng = np.random.default_rng(1)
    perfect, drifting = [], []
    for _ in range(6):
        obs = [cells(np.random.default_rng(s)) for s in rng.integers(0, 10**6, 3)]
        obs = np.stack(obs)[:, None]
        perfect.append((obs.copy(), obs, 1000.0, 300.0))
        # lead k's cells are off by k px in a direction that changes each window
        fc = np.stack(
            [
                np.roll(obs[k, 0], tuple(rng.choice([-1, 1], 2) * k), axis=(0, 1))
                for k in range(3)
            ]
        )[:, None]
        drifting.append((fc, obs, 1000.0, 300.0))
    fit = fit_spread(iter(perfect), candidates=(0.0, 1.0, 2.0))
    assert fit.spread_m_s == [0.0, 0.0, 0.0] and fit.windows == 6
    fit = fit_spread(iter(drifting), candidates=(2.0, 0.0, 1.0))
    assert fit.candidates == [0.0, 1.0, 2.0]
    assert fit.spread_m_s[0] == 0.0 and fit.spread_m_s[2] > 0.0
    # the scores are the mean CSI at 20 and 35 of that spread, from summed counts
    csi = []
    for thr in (20.0, 35.0):
        h = m = f = 0
        for fc, obs, _, _ in drifting:
            c = contingency(fc[2, 0], obs[2, 0], (thr,))[thr]
            h, m, f = h + c.hits, m + c.misses, f + c.false_alarms
        csi.append(h / (h + m + f))
    assert fit.scores[2][0] == pytest.approx(np.mean(csi))
    # and the chosen spread's score is that of the blur it stands for
    k, spread = 2, fit.spread_m_s[2]
    sigma = sigmas_px([spread], 1000.0, 300.0, 3)
    csi = []
    for thr in (20.0, 35.0):
        h = m = f = 0
        for fc, obs, _, _ in drifting:
            c = contingency(smooth_leads(fc, sigma)[k, 0], obs[k, 0], (thr,))[thr]
            h, m, f = h + c.hits, m + c.misses, f + c.false_alarms
        csi.append(h / (h + m + f))
    assert fit.scores[2][fit.candidates.index(spread)] == pytest.approx(np.mean(csi))
    assert max(fit.scores[2]) > fit.scores[2][0]
    with pytest.raises(ValueError, match="no verification windows"):
        fit_spread(iter([]))


def test_the_model_forecaster_applies_the_checkpoints_fit(tmp_path, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    state = load_checkpoint(ckpt)
    spread = [0.0, 1.0, 1.5, 1.5, 2.0, 2.0, 2.0]
    state["lead_smoothing"] = {"spread_m_s": spread, "mode": "max"}
    fitted = save_checkpoint(tmp_path / "fitted.pt", state)
    frames = cell_frames()
    kw = {"device": "cpu", "dbz_floor": 0.0, "cell_prior": False}
    plain = ModelForecaster(ckpt, **kw).forecast(frames, TIMES, 7, dx_m=2000.0)
    fc = ModelForecaster(fitted, **kw)
    smooth = fc.forecast(frames, TIMES, 7, dx_m=2000.0)
    assert smooth.info["lead_smoothing_m_s"] == spread
    sigma = sigmas_px(spread, 2000.0, 300.0, 7)  # 0, 0.3, ... 2.1 px
    want = smooth_leads(plain.dbz, sigma, floor=0.0, mode="max")
    np.testing.assert_allclose(smooth.dbz, want, atol=1e-4, equal_nan=True)
    assert np.nanmax(np.abs(smooth.dbz[-1] - plain.dbz[-1])) > 1.0
    np.testing.assert_array_equal(smooth.dbz[0], plain.dbz[0])
    off = ModelForecaster(fitted, smoothing=False, **kw)
    np.testing.assert_array_equal(
        off.forecast(frames, TIMES, 7, dx_m=2000.0).dbz, plain.dbz
    )
    assert off.info["lead_smoothing_m_s"] is None
    # the prior alone has no smoothing either (it is the model's)
    alone = ModelForecaster(fitted, network=False, **kw)
    assert alone.spread_m_s == []
    monkeypatch.setenv("NOWCAST_MODEL__SMOOTHING", "false")
    monkeypatch.setenv("NOWCAST_DAEMON__DEVICE", "cpu")
    settings = load_config(None)
    assert get_forecaster("model", settings, checkpoint=fitted).spread_m_s == []


def test_fit_smoothing_script_writes_the_fit_into_a_copy(tmp_path):
    ckpt = make_checkpoint(tmp_path / "tiny.pt", levels=(3,))
    state = load_checkpoint(ckpt)  # a trend fitted on the old smoothing's forecasts
    state["lead_trend"] = {"scale_m": 8000.0, "weight": [1.0] * 7}
    save_checkpoint(ckpt, state)
    out = tmp_path / "fitted.pt"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "fit_smoothing.py"),
            "--model",
            str(ckpt),
            "--synthetic",
            "2",
            "--regimes",
            "multicell",
            "--levels",
            "3",
            "--size",
            "48",
            "--candidates",
            "0,1,3",
            "--out",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 windows" in proc.stdout and "| t+7 |" in proc.stdout
    fit = load_checkpoint(out)["lead_smoothing"]
    assert len(fit["spread_m_s"]) == 7 and set(fit["spread_m_s"]) <= {0.0, 1.0, 3.0}
    assert fit["sources"] == {"synthetic multicell": 2} and fit["windows"] == 2
    assert fit["mode"] == "max"
    before, after = load_checkpoint(ckpt), load_checkpoint(out)
    for key, tensor in before["model"].items():  # the weights are untouched
        assert torch.equal(tensor, after["model"][key])
    assert "lead_smoothing" not in before
    assert "lead_trend" in before and "lead_trend" not in after  # refit it after
    assert "dropped the checkpoint's Lagrangian trend" in proc.stdout


def test_matched_blur_keeps_each_levels_values_and_moves_them():
    rng = np.random.default_rng(3)
    lead = np.stack([cells(rng, n=12), cells(rng, n=3)])  # 2 levels
    lead[0, :5, :5] = np.nan
    dbz = lead[None]
    out = smooth_leads(dbz, [2.5], floor=-32.0, mode="matched")
    for z in range(2):  # the same values on every level, rank for rank ...
        got, want = out[0, z], lead[z]
        assert (np.isnan(got) == np.isnan(want)).all()
        np.testing.assert_array_equal(
            np.sort(got[np.isfinite(got)]), np.sort(want[np.isfinite(want)])
        )
    # ... the area above a threshold kept, the pattern smoothed: the 50 dBZ
    # pixels now sit where the blurred Z is highest
    blurred = smooth_leads(dbz, [2.5], floor=-32.0)[0, 0]
    top = out[0, 0] >= 35
    assert top.sum() == (lead[0] >= 35).sum()
    assert np.nanmin(blurred[top]) >= np.nanmax(blurred[~top & np.isfinite(blurred)])
    assert not np.array_equal(out[0, 0], lead[0], equal_nan=True)
    # max: the larger of blur and matched blur, pixel by pixel
    both = smooth_leads(dbz, [2.5], floor=-32.0, mode="max")[0]
    np.testing.assert_array_equal(both, np.fmax(out[0], smooth_leads(dbz, [2.5])[0]))
    assert (both[0] >= 35).sum() >= (lead[0] >= 35).sum()  # no core lost
    with pytest.raises(ValueError, match="mode must be"):
        smooth_leads(dbz, [1.0], mode="sharpen")


def test_a_trained_candidate_takes_productions_fit(tmp_path):
    production = make_checkpoint(tmp_path / "production.pt")
    candidate = make_checkpoint(tmp_path / "candidate.pt")
    assert not carry_smoothing(production, candidate)  # production has no fit
    assert not carry_smoothing(tmp_path / "missing.pt", candidate)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert not carry_smoothing(garbage, candidate)
    state = load_checkpoint(production)
    state["lead_smoothing"] = {"spread_m_s": [2.0, 1.5], "windows": 52}
    save_checkpoint(production, state)
    assert carry_smoothing(production, candidate)
    fit = load_checkpoint(candidate)["lead_smoothing"]
    assert fit["spread_m_s"] == [2.0, 1.5] and fit["carried_from"] == str(production)
    state["lead_smoothing"] = {"spread_m_s": [9.0]}
    save_checkpoint(production, state)
    assert not carry_smoothing(production, candidate)  # it has its own now
    assert load_checkpoint(candidate)["lead_smoothing"]["spread_m_s"] == [2.0, 1.5]
    fc = ModelForecaster(candidate, device="cpu", cell_prior=False)
    assert fc.spread_m_s == [2.0, 1.5]


def test_a_checkpoint_with_an_unknown_mode_is_refused_at_load(tmp_path):
    state = load_checkpoint(make_checkpoint(tmp_path / "tiny.pt"))
    state["lead_smoothing"] = {"spread_m_s": [1.0], "mode": "sharpen"}
    bad = save_checkpoint(tmp_path / "bad.pt", state)
    with pytest.raises(ForecasterError, match="bad.pt: lead smoothing mode 'sharpen'"):
        ModelForecaster(bad, device="cpu", cell_prior=False)
    # switched off, the fit is not used and the model still loads
    ModelForecaster(bad, device="cpu", cell_prior=False, smoothing=False)
