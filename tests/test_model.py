"""nowcast.model: the cell, the warp, the network (tiny sizes only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nowcast.config import ModelConfig
from nowcast.model import (
    ConvLSTM3DCell,
    ConvLSTM3DNet,
    build_network,
    from_unit,
    network_kwargs,
    to_unit,
    warp,
)
from nowcast.model.blocks import LevelConv3d

TINY = dict(hidden_channels=(4, 4), stem_channels=4, groups=2)


def tiny_net(**kwargs) -> ConvLSTM3DNet:
    torch.manual_seed(0)
    return build_network(**{**TINY, **kwargs})


@pytest.mark.parametrize("head", ["advection", "plain"])
@pytest.mark.parametrize(("z", "y", "x"), [(1, 20, 25), (3, 25, 33), (1, 250, 250)])
def test_output_shapes_any_size(head: str, z: int, y: int, x: int) -> None:
    net = tiny_net(head=head, hidden_channels=(4,))
    with torch.no_grad():
        out = net(torch.rand(2, 8, z, y, x))
    assert out.frames.shape == (2, 7, z, y, x)
    assert out.frames.dtype == torch.float32
    assert 0.0 <= out.frames.min() and out.frames.max() <= 1.0
    if head == "advection":
        assert out.motion is not None and out.motion.shape == (2, 7, 2, y, x)
    else:
        assert out.motion is None


@pytest.mark.parametrize("head", ["advection", "plain"])
def test_runs_without_a_stem(head: str) -> None:
    net = tiny_net(head=head, hidden_channels=(4,), stem_strides=())
    with torch.no_grad():
        out = net(torch.rand(1, 8, 2, 9, 11))
    assert out.frames.shape == (1, 7, 2, 9, 11)


@pytest.mark.parametrize("head", ["advection", "plain"])
def test_gradients_reach_every_parameter(head: str) -> None:
    net = tiny_net(head=head, flow_input=True)
    x = torch.rand(2, 8, 3, 20, 25)
    flow = torch.randn(2, 2, 20, 25)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):  # the residual layers start at zero: one step wakes them
        opt.zero_grad()
        out = net(x, flow)
        loss = out.frames.mean() + (0 if out.motion is None else out.motion.mean())
        loss.backward()
        opt.step()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert dead == []


def test_groupnorm_groups_are_validated() -> None:
    with pytest.raises(ValueError, match="groups"):
        ConvLSTM3DCell(2, 3, groups=5)
    with pytest.raises(ValueError, match="groups"):
        build_network(hidden_channels=(4,), stem_channels=6, groups=4)
    with pytest.raises(ValueError, match="odd"):
        ConvLSTM3DCell(2, 4, kernel_size=(2, 3, 3), groups=4)


def test_flow_input_requires_flow() -> None:
    net = tiny_net(flow_input=True)
    with pytest.raises(ValueError, match="flow"):
        net(torch.rand(1, 8, 1, 20, 20))
    with pytest.raises(ValueError, match="x must be"):
        net(torch.rand(1, 7, 1, 20, 20), torch.zeros(1, 2, 20, 20))


@pytest.mark.parametrize("stride", [(1, 1, 1), (2, 2, 2)])
def test_level_conv_matches_conv3d_on_one_level(stride) -> None:
    torch.manual_seed(0)
    conv = LevelConv3d(3, 5, 3, stride=stride, padding=1)
    x = torch.rand(2, 3, 1, 9, 10)
    expect = torch.nn.functional.conv3d(
        x, conv.weight, conv.bias, stride=stride, padding=1
    )
    torch.testing.assert_close(conv(x), expect)


def test_warp_integer_shift_is_roll() -> None:
    rng = np.random.default_rng(0)
    field = rng.random((2, 3, 20, 25)).astype(np.float32)
    dx, dy = 3, -2
    disp = torch.zeros(2, 2, 20, 25)
    disp[:, 0], disp[:, 1] = dx, dy
    out = warp(torch.from_numpy(field), disp).numpy()
    rolled = np.roll(field, shift=(dy, dx), axis=(-2, -1))
    inner = (slice(None), slice(None), slice(3, -3), slice(4, -4))
    np.testing.assert_allclose(out[inner], rolled[inner], atol=1e-6)
    # nothing flows in from outside: the inflow side is empty
    assert np.all(out[..., :dx] == 0.0)


def test_advection_head_with_zero_residual_is_a_pure_shift() -> None:
    net = tiny_net(head="advection", flow_input=True)
    with torch.no_grad():
        for conv in (net.motion, net.change):
            conv.weight.zero_()
            conv.bias.zero_()
    x = torch.rand(2, 8, 3, 25, 33)
    flow = torch.zeros(2, 2, 25, 33)
    flow[:, 0], flow[:, 1] = 1.0, -1.0
    with torch.no_grad():
        out = net(x, flow)
    last = x[:, -1].numpy()
    for k in range(1, 8):
        expected = np.roll(last, shift=(-k, k), axis=(-2, -1))
        got = out.frames[:, k - 1].numpy()
        inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
        np.testing.assert_allclose(got[inner], expected[inner], atol=1e-5)
    np.testing.assert_allclose(out.motion[:, :, 0].numpy(), 1.0)
    np.testing.assert_allclose(out.motion[:, :, 1].numpy(), -1.0)


def test_cell_state_stays_float32_under_bf16_autocast() -> None:
    cell = ConvLSTM3DCell(2, 4, groups=4)
    x = torch.rand(1, 2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h, (h2, c) = cell(x)
        h, (h2, c) = cell(x, (h, c))
    assert c.dtype == torch.float32
    assert h.dtype == torch.bfloat16
    net = tiny_net(hidden_channels=(4,))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.rand(1, 8, 1, 12, 12))
    assert out.frames.dtype == torch.float32 and torch.isfinite(out.frames).all()


def test_checkpoint_steps_gives_the_same_result() -> None:
    x = torch.rand(2, 8, 1, 12, 13)
    flow = torch.randn(2, 2, 12, 13)
    results = []
    for ckpt in (False, True):
        net = tiny_net(hidden_channels=(4,), flow_input=True, checkpoint_steps=ckpt)
        out = net(x, flow)
        out.frames.sum().backward()
        grads = [p.grad.clone() for p in net.parameters()]
        results.append((out.frames.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b)


def test_network_kwargs_from_config_rebuilds() -> None:
    cfg = ModelConfig(hidden_channels=[4], stem_channels=4, groups=2)
    kwargs = network_kwargs(cfg, in_frames=8, out_frames=7)
    assert "groups" in kwargs and kwargs["flow_input"] is cfg.use_flow_input
    net = build_network(**kwargs)
    again = build_network(**net.init_kwargs)
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in again.parameters()
    )


def test_normalise_round_trip_and_nan() -> None:
    dbz = np.array([np.nan, -10.0, 0.0, 35.0, 70.0, 90.0], dtype=np.float32)
    unit = to_unit(dbz)
    np.testing.assert_allclose(unit, [0.0, 0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(from_unit(unit[2:5]), [0.0, 35.0, 70.0])
    t = to_unit(torch.from_numpy(dbz), dbz_min=0.0, dbz_max=70.0)
    assert torch.equal(t, torch.from_numpy(unit))
    with pytest.raises(ValueError):
        to_unit(dbz, dbz_min=10.0, dbz_max=10.0)


def _blob(ny: int, nx: int, cy: float, cx: float, r: float = 2.5) -> torch.Tensor:
    yy, xx = torch.meshgrid(
        torch.arange(ny, dtype=torch.float32),
        torch.arange(nx, dtype=torch.float32),
        indexing="ij",
    )
    return torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))


def test_lagrangian_frame_aligns_the_past_along_the_flow() -> None:
    """A blob moving 2 px a step in x and -1 in y sits still once aligned."""
    net = tiny_net(flow_input=True, frame="lagrangian")
    frames = [_blob(30, 40, 20 - t, 10 + 2 * t) for t in range(8)]
    x = torch.stack(frames)[None, :, None]  # (1, 8, 1, 30, 40)
    flow = torch.zeros(1, 2, 30, 40)
    flow[:, 0], flow[:, 1] = 2.0, -1.0
    aligned = net.aligned(x, flow)
    for t in range(8):
        torch.testing.assert_close(aligned[0, t], x[0, -1], atol=1e-3, rtol=0)
    # without a flow there is nothing to align along
    assert net.aligned(x, None) is x


def test_lagrangian_change_moves_with_the_echo() -> None:
    """Eulerian: the change is added where it is made; Lagrangian: it is made on
    the last frame's grid and carried along the flow with the echo."""
    ny, nx = 30, 40
    last = 0.5 * _blob(ny, nx, 15, 8)
    x = last.expand(8, ny, nx)[None, :, None].clone()
    flow = torch.zeros(1, 2, ny, nx)
    flow[:, 0] = 3.0
    spot = _blob(ny, nx, 15, 8, r=1.5) * 0.2  # growth on the blob's last position
    results = {}
    for frame in ("eulerian", "lagrangian"):
        net = tiny_net(flow_input=True, frame=frame)
        net._head = lambda h_top, skips: (torch.zeros(1, 2, ny, nx), spot[None, None])
        with torch.no_grad():
            results[frame] = net(x, flow).frames[0, :, 0]
        prior = net(x, flow, network=False).frames[0, :, 0].detach()
        results[frame + "-prior"] = prior
    # the prior alone does not depend on the frame
    torch.testing.assert_close(results["eulerian-prior"], results["lagrangian-prior"])
    for k in range(7):
        moved = results["lagrangian"][k] - results["lagrangian-prior"][k]
        stayed = results["eulerian"][k] - results["eulerian-prior"][k]
        centre = 8 + 3 * (k + 1)
        assert int(moved[15].argmax()) == centre  # with the echo
        assert int(stayed[15].argmax()) == 8  # where it was made
        assert float(moved.sum()) == pytest.approx(float(spot.sum()), rel=0.05)


def test_lagrangian_frame_needs_the_advection_head_and_flow() -> None:
    with pytest.raises(ValueError, match="lagrangian"):
        tiny_net(flow_input=False, frame="lagrangian")
    with pytest.raises(ValueError, match="lagrangian"):
        tiny_net(head="plain", flow_input=True, frame="lagrangian")
    with pytest.raises(ValueError, match="frame"):
        tiny_net(flow_input=True, frame="sideways")
    cfg = ModelConfig(
        hidden_channels=[4], stem_channels=4, groups=2, frame="lagrangian"
    )
    net = build_network(**network_kwargs(cfg))
    assert net.frame == "lagrangian"
    assert build_network(**net.init_kwargs).frame == "lagrangian"


def test_sources_inside_marks_what_flows_in_across_the_edge() -> None:
    from nowcast.model.warp import sources_inside

    disp = torch.zeros(2, 3, 2, 10, 12)
    disp[:, :, 0] = torch.tensor([1.0, 2.5, 0.0]).view(1, 3, 1, 1)  # x, by lead
    inside = sources_inside(disp)
    assert inside.shape == (2, 3, 10, 12) and inside.dtype == torch.bool
    assert inside[:, 2].all()  # no displacement: every source is inside
    assert not inside[:, 0, :, 0].any() and inside[:, 0, :, 1:].all()
    assert not inside[:, 1, :, :3].any() and inside[:, 1, :, 3:].all()


@pytest.mark.parametrize("frame", ["eulerian", "lagrangian"])
def test_untrained_network_is_its_prior_exactly(frame: str) -> None:
    """The residual layers start at zero: before any training the network's
    forecast is its prior's, lead by lead (a small random start cost 0.045 CSI at
    35 dBZ on simulated volumes, 2.4 dBZ of noise on every voxel)."""
    ny, nx = 30, 40
    frames = [_blob(ny, nx, 15, 8 + 2 * t) for t in range(8)]
    x = torch.stack(frames)[None, :, None]
    flow = torch.zeros(1, 2, ny, nx)
    flow[:, 0] = 2.0
    net = tiny_net(flow_input=True, frame=frame)
    with torch.no_grad():
        torch.testing.assert_close(
            net(x, flow).frames, net(x, flow, network=False).frames
        )
    assert not net.change.weight.any() and not net.motion.weight.any()
