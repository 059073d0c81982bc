"""The storm-tracked motion prior: TITAN's storm motion over the optical flow."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import torch

from nowcast.forecasters.titan import TitanForecaster
from nowcast.config import CellPriorConfig
from nowcast.model import build_network
from nowcast.forecasters.storm_prior import (
    CellPriorParams,
    cell_prior,
    flow_displacements,
    track_scatter_px,
)
from nowcast.forecasters.model import ModelForecaster
from nowcast.model.network import MotionPrior

DX = 2000.0
STEP = 300.0
TIMES_S = [STEP * k for k in range(8)]
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
TIMES = [T0 + timedelta(seconds=s) for s in TIMES_S]


# tiny tensors: one torch thread (conftest.torch_one_thread)
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def storm_frames(
    speed=(1.5, 0.0), zigzag: float = 0.0, size: int = 64, nz: int = 2, start=None
) -> np.ndarray:
    """8 frames ``(8, nz, size, size)``: a 50 dBZ disc (radius 4 px) moving
    ``speed`` px/step over a stationary 25 dBZ stratiform band; ``zigzag`` moves
    it alternately up and down by that many px (a wandering track)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    y0, x0 = start or (size / 2, 16.0)
    frames = np.zeros((8, nz, size, size), dtype=np.float32)
    for t in range(8):
        cy = y0 + speed[1] * t + (zigzag if t % 2 else -zigzag)
        cx = x0 + speed[0] * t
        field = np.where(np.abs(yy - y0) < 12, 25.0, 0.0).astype(np.float32)
        disc = np.hypot(yy - cy, xx - cx) <= 4.0
        field[disc] = 50.0
        frames[t] = field
    return frames


def prior_of(frames, flow=None, params=CellPriorParams(), n_leads=7):
    if flow is None:
        flow = np.zeros((2, *frames.shape[-2:]), dtype=np.float32)
    return cell_prior(
        frames,
        TIMES_S,
        dx_m=DX,
        step_s=STEP,
        flow=flow,
        n_leads=n_leads,
        params=params,
        tracker=TitanForecaster(),
    )


def centroid_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean())


def test_a_straight_deviating_storm_moves_rigidly_and_is_cleared():
    frames = storm_frames()
    p = prior_of(frames)  # the flow says nothing moves
    assert len(p.storms) == 1
    storm = p.storms[0]
    assert storm["u_px"] == pytest.approx(1.5, abs=0.05)
    assert storm["v_px"] == pytest.approx(0.0, abs=0.05)
    assert storm["weight"] == 1.0 and storm["cleared"]
    start = centroid_x(frames[-1, 0] >= 35)
    for k in range(7):
        inside = p.mask[k]
        # the (grown) footprint moved (k + 1) * u, whole pixels
        assert centroid_x(inside) == pytest.approx(start + 1.5 * (k + 1), abs=0.6)
        np.testing.assert_allclose(p.disp[k, 0][inside], storm["u_px"] * (k + 1))
        np.testing.assert_allclose(p.disp[k, 1][inside], storm["v_px"] * (k + 1))
        assert (p.disp[k][:, ~inside] == 0).all()  # the flow's (zero) elsewhere
    # what the flow moves has the storm capped at 30 dBZ, grown by 1 px
    core = frames[-1, 0] >= 35
    assert p.ceiling is not None and (p.ceiling[core] == 30.0).all()
    assert np.isfinite(p.ceiling).sum() > core.sum()
    assert np.isinf(p.ceiling[:, :3]).all()


def test_no_ghost_left_behind_and_none_without_clearing():
    frames = storm_frames()
    x = torch.from_numpy(frames / 70.0)[None]
    net = build_network(hidden_channels=(4,), stem_channels=4, groups=2).eval()
    with torch.no_grad():  # no residual motion, no intensity change
        for p in [*net.motion.parameters(), *net.change.parameters()]:
            p.zero_()
    start = frames[-1, 0] >= 35
    for clear, ghost in ((2.0, False), (math.inf, True)):
        p = prior_of(frames, params=CellPriorParams(clear_px=clear))
        ceiling = None
        if p.ceiling is not None:
            ceiling = torch.from_numpy(np.minimum(p.ceiling, 70.0) / 70.0)[None]
        prior = MotionPrior(
            torch.from_numpy(p.disp)[None],
            torch.from_numpy(p.mask.astype(np.float32))[None],
            ceiling,
            torch.from_numpy(p.motion)[None],
        )
        with torch.no_grad():
            out = net(x, None, prior)
        lead7 = out.frames[0, 6, 0].numpy() * 70.0
        core = lead7 >= 35
        assert centroid_x(core & ~start) == pytest.approx(
            centroid_x(start) + 10.5, abs=1.0
        )
        left_behind = core & start & ~p.mask[6]
        assert left_behind.any() == ghost
        band = np.abs(np.arange(64) - 32) < 10
        np.testing.assert_allclose(lead7[band][:, :5], 25.0, atol=1e-3)
        motion = out.motion[0, 6].numpy()
        np.testing.assert_allclose(motion[0][p.mask[6]], 1.5, atol=0.05)
        assert (motion[:, ~p.mask[6]] == 0).all()


def test_a_wandering_track_keeps_the_flow_copy():
    frames = storm_frames(zigzag=1.5)
    p = prior_of(frames)
    assert len(p.storms) == 1 and not p.storms[0]["cleared"]
    assert p.ceiling is None
    assert p.mask.any()


def test_without_storms_it_is_the_flow_prior():
    frames = np.minimum(storm_frames(), 30.0)  # nothing reaches 35 dBZ
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 1, size=(2, 64, 64)).astype(np.float32)
    p = prior_of(frames, flow=flow)
    assert p.storms == [] and not p.mask.any() and p.ceiling is None
    np.testing.assert_array_equal(p.disp, flow_displacements(flow, 7))
    # a storm seen in fewer than min_scans scans is not used either
    late = frames.copy()
    late[-1] = storm_frames()[-1]
    assert prior_of(late, flow=flow).storms == []


def test_track_scatter():
    class Track:
        times_s = [0.0, 300.0, 600.0, 900.0]
        x_km = [0.0, 2.0, 4.0, 6.0]
        y_km = [0.0, 0.0, 0.0, 0.0]

    assert track_scatter_px(Track, 7, DX) == pytest.approx(0.0, abs=1e-9)
    Track.y_km = [0.0, 2.0, 0.0, 2.0]  # +-1 km about the line: 0.5 px at 2 km
    assert track_scatter_px(Track, 7, DX) == pytest.approx(0.447, abs=0.01)
    assert track_scatter_px(Track, 2, DX) == math.inf


def test_params_and_config_agree():
    cfg = CellPriorConfig().model_dump(exclude={"enabled"})
    assert CellPriorParams.from_dict(cfg) == CellPriorParams()
    assert CellPriorParams.from_dict({"clear_px": None}).clear_px == math.inf
    with pytest.raises(ValueError, match="unknown keys bogus"):
        CellPriorParams.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="min_scans"):
        CellPriorParams(min_scans=1)


def test_network_prior_with_an_empty_mask_changes_nothing():
    torch.manual_seed(0)
    net = build_network(hidden_channels=(4,), stem_channels=4, groups=2,
                        flow_input=True).eval()
    x = torch.rand(1, 8, 2, 20, 20)
    flow = torch.randn(1, 2, 20, 20)
    disp = torch.from_numpy(flow_displacements(flow[0].numpy(), 7))[None] + 3.0
    empty = MotionPrior(disp, torch.zeros(1, 7, 20, 20))
    uncapped = MotionPrior(disp, torch.zeros(1, 7, 20, 20), torch.ones(1, 20, 20))
    capped = MotionPrior(disp, torch.zeros(1, 7, 20, 20), torch.zeros(1, 20, 20))
    with torch.no_grad():
        plain = net(x, flow)
        with_prior = net(x, flow, empty)
        torch.testing.assert_close(net(x, flow, uncapped).frames, plain.frames)
        assert net(x, flow, capped).frames.max() < plain.frames.max()
        full = net(x, flow, MotionPrior(disp, torch.ones(1, 7, 20, 20)))
    torch.testing.assert_close(with_prior.frames, plain.frames, rtol=0, atol=0)
    torch.testing.assert_close(with_prior.motion, plain.motion, rtol=0, atol=0)
    assert not torch.allclose(full.frames, plain.frames)
    with pytest.raises(ValueError, match="prior.disp has 3 leads"):
        net(x, flow, MotionPrior(disp[:, :3], torch.zeros(1, 3, 20, 20)))
    with pytest.raises(ValueError, match="prior.mask must be"):
        net(x, flow, MotionPrior(disp, torch.zeros(1, 7, 10, 10)))
    plain_head = build_network(hidden_channels=(4,), stem_channels=4, groups=2,
                               head="plain")
    with pytest.raises(ValueError, match="advection head"):
        plain_head(x, None, empty)


def test_the_model_forecaster_uses_it(tmp_path):
    from test_model_forecaster import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "tiny.pt", levels=(2,))
    frames = storm_frames(speed=(1.5, 1.0))
    frames[:, :, :3, :3] = np.nan  # a corner without coverage
    on = ModelForecaster(ckpt, device="cpu")
    off = ModelForecaster(ckpt, device="cpu", cell_prior=False)
    res_on = on.forecast(frames, TIMES, 7, dx_m=DX)
    res_off = off.forecast(frames, TIMES, 7, dx_m=DX)
    assert res_on.info["cell_prior"] == CellPriorParams().to_dict()
    assert res_on.info["storms_tracked"] == 1 and res_on.info["prior_seconds"] > 0
    assert res_off.info["cell_prior"] is None and "storms_tracked" not in res_off.info
    nan = np.isnan(res_on.dbz)
    assert (nan == np.isnan(frames[-1])[None]).all()
    # over the storm the motion is the storm's: 1.5 and 1.0 px per 5 min at 2 km
    comp = res_on.dbz[6].max(axis=0) >= 35
    u = res_on.motion[6, 0][comp]
    v = res_on.motion[6, 1][comp]
    assert np.median(u) == pytest.approx(10.0, abs=0.5)
    assert np.median(v) == pytest.approx(6.67, abs=0.5)
    # the plain head and a net without the flow input ignore the setting
    plain = make_checkpoint(tmp_path / "plain.pt", head="plain")
    assert ModelForecaster(plain, device="cpu").info["cell_prior"] is None
    noflow = make_checkpoint(tmp_path / "noflow.pt", flow_input=False)
    assert ModelForecaster(noflow, device="cpu").info["cell_prior"] is None


def test_settings_turn_it_off_and_tune_it(tmp_path):
    from test_model_forecaster import make_checkpoint

    from nowcast.config import load_config

    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[paths]\nproduction_model = "{ckpt}"\n[daemon]\ndevice = "cpu"\n'
        "[model.cell_prior]\nclear_px = 5.0\n"
    )
    fc = ModelForecaster.from_settings(load_config(cfg))
    assert fc.cell_prior == CellPriorParams(clear_px=5.0)
    cfg.write_text(cfg.read_text().replace("clear_px = 5.0", "enabled = false"))
    assert ModelForecaster.from_settings(load_config(cfg)).cell_prior is None
