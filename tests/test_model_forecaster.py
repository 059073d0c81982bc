"""The model as a forecaster: checkpoint in, the interface's shapes and units out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import moving_cell_scans
from nowcast.forecasters import get_forecaster
from nowcast.cli import main
from nowcast.config import load_config
from nowcast.model.checkpoint import save_checkpoint
from nowcast.errors import ForecasterError, ModelError
from nowcast.model import build_network
from nowcast.forecasters.model import ModelForecaster
from nowcast.radar import pool, write_scan

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
TIMES = [T0 + timedelta(minutes=5 * k) for k in range(8)]
TINY = dict(hidden_channels=(4, 4), stem_channels=4, groups=2, flow_input=True)


# tiny tensors: one torch thread (conftest.torch_one_thread)
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def make_checkpoint(path: Path, levels=(2,), **kw) -> Path:
    torch.manual_seed(0)
    net = build_network(**{**TINY, **kw})
    state = {
        "model": net.state_dict(),
        "init_kwargs": net.init_kwargs,
        "phase": 3,
        "epoch": 80,
        "data": {"levels": list(levels), "dbz_min": 0.0, "dbz_max": 70.0},
    }
    return save_checkpoint(path, state)


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return make_checkpoint(tmp_path / "tiny.pt")


def cell_frames(nz: int = 2, size: int = 48) -> np.ndarray:
    """8 pooled frames ``(8, nz, size/2, size/2)`` of a cell moving 1 px/step
    (2 px on the fine grid), with a corner without coverage."""
    scans = moving_cell_scans(n=8, nz=nz, size=size, speed_px=(2.0, 0.0))
    frames = np.stack([pool(s.dbz, 2) for s in scans]).astype(np.float32)
    frames[:, :, :3, :3] = np.nan
    return frames


def test_forecast_shapes_units_and_coverage(ckpt):
    # the flow prior alone (the storm-tracked prior: tests/test_cell_prior.py)
    fc = ModelForecaster(ckpt, device="cpu", dbz_floor=0.0, cell_prior=False)
    frames = cell_frames()
    res = fc.forecast(frames, TIMES, 7, dx_m=2000.0)
    assert res.method == "model"
    assert res.dbz.shape == (7, 2, 24, 24) and res.dbz.dtype == np.float32
    nan = np.isnan(res.dbz)
    assert (nan == np.isnan(frames[-1])[None]).all()  # NaN exactly off coverage
    assert np.nanmin(res.dbz) >= 0.0 and np.nanmax(res.dbz) <= 70.0
    assert res.motion.shape == (7, 2, 24, 24) and res.motion.dtype == np.float32
    # motion: the net's px/step times dx / interval
    from nowcast.forecasters.flow import flow_prior
    from nowcast.model import to_unit

    flow = torch.from_numpy(flow_prior(frames[-3:]))[None]
    with torch.no_grad():
        out = fc.net(torch.from_numpy(to_unit(frames))[None], flow)
    want = out.motion[0].numpy() * 2000.0 / 300.0
    np.testing.assert_allclose(res.motion, want, rtol=1e-5, atol=1e-5)
    assert res.info["checkpoint"] == str(ckpt) and res.info["phase"] == 3
    assert res.info["epoch"] == 80 and res.info["mtime"].endswith("Z")
    assert res.info["device"] == "cpu" and res.info["net_seconds"] > 0
    # an untrained advection net is the optical-flow extrapolation: the cell
    # moves east about 1 px a step
    comp = np.nan_to_num(res.dbz).max(axis=1)
    x = np.arange(24)
    centroid = [(c.sum(axis=0) * x).sum() / c.sum() for c in comp]
    last = np.nan_to_num(frames[-1]).max(axis=0)
    start = (last.sum(axis=0) * x).sum() / last.sum()
    assert centroid[2] - start == pytest.approx(3.0, abs=1.0)


def test_floor_fewer_leads_and_interval(ckpt):
    fc = ModelForecaster(ckpt, device="cpu", dbz_floor=5.0)
    res = fc.forecast(cell_frames(), TIMES, 3, dx_m=1000.0, interval_s=600.0)
    assert res.dbz.shape == (3, 2, 24, 24)
    assert np.nanmin(res.dbz) >= 5.0
    longer = ModelForecaster(ckpt, device="cpu")
    slow = longer.forecast(cell_frames(), TIMES, 3, dx_m=1000.0, interval_s=600.0)
    fast = longer.forecast(cell_frames(), TIMES, 3, dx_m=1000.0, interval_s=300.0)
    np.testing.assert_allclose(slow.motion * 2, fast.motion, rtol=1e-5, atol=1e-6)


def test_refusals_say_why(ckpt, tmp_path):
    fc = ModelForecaster(ckpt, device="cpu")
    with pytest.raises(ForecasterError, match="newest 8 frames"):
        fc.forecast(cell_frames()[-5:], TIMES[-5:], 7, dx_m=2000.0)
    with pytest.raises(ForecasterError, match="forecasts 7 leads, 8 asked"):
        fc.forecast(cell_frames(), TIMES, 8, dx_m=2000.0)
    with pytest.raises(ForecasterError, match="trained on 2-level volumes"):
        fc.forecast(cell_frames(nz=1), TIMES, 7, dx_m=2000.0)
    assert fc.runs_on(2) and not fc.runs_on(1)
    anyz = ModelForecaster(ckpt, device="cpu", any_levels=True)
    assert anyz.runs_on(1)
    assert anyz.forecast(cell_frames(nz=1), TIMES, 7, dx_m=2000.0).dbz.shape[1] == 1
    with pytest.raises(ModelError, match="missing.pt"):
        get_forecaster("model", checkpoint=tmp_path / "missing.pt")
    with pytest.raises(ForecasterError, match="needs a checkpoint"):
        get_forecaster("model")


def test_without_pysteps_the_flow_names_the_extra(ckpt, monkeypatch):
    from nowcast.forecasters import pysteps_methods

    def missing():
        raise ForecasterError(
            "pysteps cannot be imported; install the extra: "
            "pip install 'nowcast[pysteps]'"
        )

    monkeypatch.setattr(pysteps_methods, "import_pysteps", missing)
    fc = ModelForecaster(ckpt, device="cpu")
    want = r"optical-flow prior.*nowcast\[pysteps\]"
    with pytest.raises(ForecasterError, match=want):
        fc.forecast(cell_frames(), TIMES, 7, dx_m=2000.0)
    plain = make_checkpoint(ckpt.parent / "noflow.pt", flow_input=False)
    res = ModelForecaster(plain, device="cpu").forecast(
        cell_frames(), TIMES, 7, dx_m=2000.0
    )
    assert np.isfinite(res.dbz[:, :, 5:, 5:]).all()


def test_registry_and_settings(ckpt, tmp_path):
    fc = get_forecaster("model", checkpoint=ckpt, device="cpu")
    assert isinstance(fc, ModelForecaster)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[paths]\nproduction_model = "{ckpt}"\n[radar]\ndbz_floor = 2.0\n'
        '[daemon]\ndevice = "cpu"\n'
    )
    settings = load_config(cfg)
    fc = get_forecaster("model", settings)
    assert fc.checkpoint == ckpt and fc.dbz_floor == 2.0 and fc.device == "cpu"


def test_nowcast_predict_with_the_model(ckpt, tmp_path, capsys):
    scans = tmp_path / "scans"
    for s in moving_cell_scans(n=9, nz=2, size=48, speed_px=(2.0, 0.0)):
        write_scan(s, scans)
    out = tmp_path / "out"
    cfg = tmp_path / "config.toml"
    cfg.write_text('[daemon]\ndevice = "cpu"\n')
    status = main(
        [
            "predict",
            "--config",
            str(cfg),
            "--input",
            str(scans),
            "--output",
            str(out),
            "--method",
            "model",
            "--model",
            str(ckpt),
        ]
    )
    text = capsys.readouterr().out
    assert status == 0, text
    assert "2 forecast sets (14 files)" in text
    assert len(list(out.rglob("*.nc"))) == 14


def test_network_off_is_the_prior_alone(ckpt, tmp_path, monkeypatch):
    """``[model] network = false`` forecasts with the network's residual motion and
    intensity change at zero: exactly what a network whose residual layers are zero
    forecasts, and not what the trained network does."""
    frames = cell_frames()
    kw = dict(device="cpu", dbz_floor=0.0)
    for cell_prior in (False, True):
        full = ModelForecaster(ckpt, cell_prior=cell_prior, **kw)
        with torch.no_grad():  # a network that does correct its prior
            for conv in full.net.residual_parameters():
                conv.add_(0.05 * torch.randn_like(conv))
        alone = ModelForecaster(ckpt, cell_prior=cell_prior, network=False, **kw)
        zeroed = ModelForecaster(ckpt, cell_prior=cell_prior, **kw)
        with torch.no_grad():
            for conv in zeroed.net.residual_parameters():
                conv.zero_()
        a = alone.forecast(frames, TIMES, 7, dx_m=2000.0)
        z = zeroed.forecast(frames, TIMES, 7, dx_m=2000.0)
        n = full.forecast(frames, TIMES, 7, dx_m=2000.0)
        np.testing.assert_allclose(a.dbz, z.dbz, atol=1e-4, equal_nan=True)
        np.testing.assert_allclose(a.motion, z.motion, atol=1e-5)
        assert np.nanmax(np.abs(n.dbz - a.dbz)) > 0.5  # the network changes it
        assert a.info["network"] is False and n.info["network"] is True
    # through the configuration, as NOWCAST_MODEL__NETWORK=false does it
    monkeypatch.setenv("NOWCAST_MODEL__NETWORK", "false")
    monkeypatch.setenv("NOWCAST_DAEMON__DEVICE", "cpu")
    settings = load_config(None)
    assert settings.model.network is False
    fc = get_forecaster("model", settings, checkpoint=ckpt)
    assert fc.network is False


def test_network_off_needs_the_advection_head(tmp_path):
    plain = make_checkpoint(tmp_path / "plain.pt", head="plain", flow_input=False)
    with pytest.raises(ForecasterError, match="plain head"):
        ModelForecaster(plain, device="cpu", network=False)
