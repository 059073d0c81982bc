"""nowcast.curriculum.losses: every term pinned on known tensors."""

from __future__ import annotations

import pytest
import torch

from nowcast.curriculum.losses import (
    quantile_term,
    CombinedLoss,
    event_csi_term,
    high_penalty_term,
    huber_term,
    motion_loss,
    ssim3d,
)

C1, C2 = 0.01**2, 0.03**2


def test_huber_term_by_hand() -> None:
    pred = torch.tensor([0.0, 0.5, 3.0, -2.0])
    target = torch.zeros(4)
    # 0, 0.5 * 0.25, 1 * (3 - 0.5), 1 * (2 - 0.5)
    assert huber_term(pred, target, delta=1.0).item() == pytest.approx(4.125 / 4)
    # delta 0.25: 0, 0.25 * (0.5 - 0.125), 0.25 * 2.875, 0.25 * 1.875
    expect = (0.09375 + 0.71875 + 0.46875) / 4
    assert huber_term(pred, target, delta=0.25).item() == pytest.approx(expect)
    mask = torch.tensor([True, True, False, False])
    assert huber_term(pred, target, 1.0, mask).item() == pytest.approx(0.0625)


def test_high_penalty_term_by_hand() -> None:
    target = torch.tensor([0.2, 0.8, 0.9, 0.5])
    pred = torch.tensor([0.5, 0.6, 0.9, 0.0])
    # only voxels 1 and 2 exceed 0.6: (0.2 + 0) / 4 voxels
    assert high_penalty_term(pred, target, 0.6).item() == pytest.approx(0.05)
    assert high_penalty_term(pred, target, 0.95).item() == 0.0


@pytest.mark.parametrize("z", [1, 3, 18])
def test_ssim_of_constant_volumes_by_hand(z: int) -> None:
    a, b = 0.3, 0.6
    x = torch.full((2, z, 16, 16), a)
    y = torch.full((2, z, 16, 16), b)
    # no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) * C2 / C2
    expect = (2 * a * b + C1) / (a * a + b * b + C1)
    assert ssim3d(x, y).item() == pytest.approx(expect, abs=1e-4)


@pytest.mark.parametrize("z", [1, 2, 5])
def test_ssim_identity_and_noise(z: int) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, z, 20, 20)
    assert ssim3d(x, x).item() == pytest.approx(1.0, abs=1e-5)
    small = ssim3d(x, (x + 0.05 * torch.randn_like(x)).clamp(0, 1)).item()
    large = ssim3d(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1)).item()
    assert 1.0 > small > large


def test_ssim_is_float32_under_autocast() -> None:
    x = torch.rand(1, 3, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = ssim3d(x.bfloat16(), x.bfloat16())
    assert s.dtype == torch.float32 and s.item() == pytest.approx(1.0, abs=1e-5)


def test_combined_loss_is_the_documented_sum() -> None:
    torch.manual_seed(1)
    target = torch.rand(2, 7, 3, 16, 16)
    pred = torch.rand(2, 7, 3, 16, 16, requires_grad=True)
    loss = CombinedLoss(
        high_penalty_weight=50.0, ssim_weight=20.0, high_threshold=40 / 70
    )
    terms = loss(pred, target)
    assert set(terms) == {"total", "huber", "high", "ssim", "event", "quantile"}
    err = pred.detach() - target
    huber = (0.5 * err**2).mean()  # every |err| <= 1 = delta
    high = ((target > 40 / 70) * err.abs()).mean()
    ssim = ssim3d(pred.detach(), target)
    torch.testing.assert_close(terms["huber"].detach(), huber)
    torch.testing.assert_close(terms["high"].detach(), high)
    torch.testing.assert_close(terms["ssim"].detach(), ssim)
    expect = huber + 50.0 * high + 20.0 * (1 - ssim)
    torch.testing.assert_close(terms["total"].detach(), expect)
    terms["total"].backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    perfect = loss(target, target)
    assert perfect["total"].item() == pytest.approx(0.0, abs=1e-5)


def test_event_csi_term_by_hand() -> None:
    # one lead, one threshold 0.5, width tiny: the soft CSI is the hard CSI of
    # the composite (column maximum), counts summed over the batch
    pred = torch.zeros(2, 1, 2, 2, 2)
    target = torch.zeros(2, 1, 2, 2, 2)
    target[0, 0, 1, 0, 0] = target[1, 0, 0, 1, 1] = 0.9  # 2 observed events
    pred[0, 0, 0, 0, 0] = 0.8  # a hit (another level, the same column)
    pred[1, 0, 0, 0, 0] = 0.8  # a false alarm; (1, 1, 1) a miss
    term = event_csi_term(pred, target, (0.5,), 1e-4)
    assert term.item() == pytest.approx(1 - 1 / 3, abs=1e-4)
    # per lead, then the mean: a perfect lead and an empty forecast
    two = torch.zeros(1, 2, 1, 4, 4)
    obs = two.clone()
    obs[0, :, 0, :2] = 0.9
    two[0, 0, 0, :2] = 0.9
    assert event_csi_term(two, obs, (0.5,), 1e-4).item() == pytest.approx(0.5, 1e-4)
    # the mask leaves the uncovered pixels out; no thresholds: 0
    mask = torch.ones_like(pred)
    mask[1] = 0.0
    masked = event_csi_term(pred, target, (0.5,), 1e-4, mask)
    assert masked.item() == pytest.approx(0.0, abs=1e-4)
    assert event_csi_term(pred, target, (), 0.1).item() == 0.0


def test_event_term_trains_only_with_its_weight() -> None:
    torch.manual_seed(2)
    target = torch.rand(2, 3, 1, 8, 8)
    base = dict(high_penalty_weight=0.0, ssim_weight=0.0, high_threshold=0.6)
    kw = dict(event_thresholds=(0.3, 0.5), event_width=0.03)
    pred = torch.rand(2, 3, 1, 8, 8, requires_grad=True)
    off = CombinedLoss(**base, **kw)(pred, target)
    on = CombinedLoss(**base, **kw, event_weight=2.0)(pred, target)
    assert 0.0 < off["event"].item() < 1.0  # reported while off
    torch.testing.assert_close(off["total"], off["huber"])
    torch.testing.assert_close(on["total"], on["huber"] + 2.0 * on["event"])
    on["event"].backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    perfect = CombinedLoss(**base, **kw)(target, target)["event"]
    assert perfect.item() < 0.1 < off["event"].item()  # soft: near, not at, 0


def test_motion_loss_endpoint_error() -> None:
    pred = torch.zeros(1, 2, 2, 4, 4)
    pred[:, :, 0], pred[:, :, 1] = 3.0, 4.0
    true = torch.zeros(1, 1, 2, 4, 4)
    assert motion_loss(pred, true).item() == pytest.approx(5.0)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 0] = True
    pred[0, 0, :, 0, 0] = 0.0
    pred[0, 1, :, 0, 0] = 0.0
    assert motion_loss(pred, true, mask).item() == pytest.approx(0.0, abs=1e-5)


def test_quantile_term_by_hand() -> None:
    """The pinball loss where either field has echo, over every valid voxel."""
    pred = torch.zeros(1, 2, 1, 1, 4)
    target = torch.zeros(1, 2, 1, 1, 4)
    # lead 0: an under-forecast of 0.5 and an over-forecast of 0.25
    target[0, 0, 0, 0, 0], pred[0, 0, 0, 0, 1] = 0.5, 0.25
    # lead 1: the same under-forecast; one voxel below the echo level on both sides
    target[0, 1, 0, 0, 0] = 0.5
    pred[0, 1, 0, 0, 2], target[0, 1, 0, 0, 2] = 0.01, 0.03
    tau = (0.6, 0.8)
    got = quantile_term(pred, target, tau, echo=0.05)
    expect = 100 * (0.6 * 0.5 + 0.4 * 0.25 + 0.8 * 0.5) / 8  # 8 voxels, 3 with echo
    assert got.item() == pytest.approx(expect)
    mask = torch.ones_like(target)
    mask[0, 1] = 0  # lead 1 not covered: out of the sum and of the count
    got = quantile_term(pred, target, tau, echo=0.05, mask=mask)
    assert got.item() == pytest.approx(100 * (0.6 * 0.5 + 0.4 * 0.25) / 4)
    with pytest.raises(ValueError, match="leads"):
        quantile_term(pred, target, (0.6, 0.7, 0.8), echo=0.05)


def test_quantile_term_minimum_is_the_quantile() -> None:
    """Over a spread of outcomes the loss is least at their tau-quantile, so a
    higher tau forecasts more: the event is marked down to a chance of 1 - tau."""
    outcomes = torch.linspace(0.1, 1.0, 10).view(10, 1, 1, 1, 1)
    candidates = torch.linspace(0.1, 1.0, 91)
    for tau in (0.5, 0.7, 0.9):
        losses = [
            quantile_term(torch.full_like(outcomes, float(c)), outcomes, tau, 0.05)
            for c in candidates
        ]
        best = float(candidates[int(torch.stack(losses).argmin())])
        assert best == pytest.approx(float(torch.quantile(outcomes, tau)), abs=0.06)


def test_combined_loss_adds_the_quantile_term_when_weighted() -> None:
    torch.manual_seed(2)
    target = torch.rand(2, 7, 1, 8, 8)
    pred = torch.rand(2, 7, 1, 8, 8)
    tau = (0.6, 0.65, 0.68, 0.71, 0.73, 0.75, 0.77)
    off = CombinedLoss(
        high_penalty_weight=0, ssim_weight=0, high_threshold=0.5, quantile_tau=tau
    )
    on = CombinedLoss(
        high_penalty_weight=0,
        ssim_weight=0,
        high_threshold=0.5,
        quantile_weight=2.0,
        quantile_tau=tau,
    )
    a, b = off(pred, target), on(pred, target)
    torch.testing.assert_close(a["quantile"], b["quantile"])  # reported either way
    torch.testing.assert_close(b["total"], a["total"] + 2.0 * b["quantile"])


def test_quantile_term_weighs_the_cores() -> None:
    """``core_weight`` multiplies the pinball loss by ``1 + core_weight`` where the
    target or the forecast reaches ``core``, and nowhere else; 0 is the plain term."""
    pred = torch.zeros(1, 1, 1, 1, 4)
    target = torch.zeros(1, 1, 1, 1, 4)
    target[..., 0] = 0.6  # an observed core the forecast misses
    pred[..., 1] = 0.5  # a forecast core that did not come
    target[..., 2] = 0.2  # weak echo, under-forecast
    plain = (0.6 * 0.6 + 0.4 * 0.5 + 0.6 * 0.2) / 4
    assert quantile_term(pred, target, 0.6, 0.05).item() == pytest.approx(100 * plain)
    weighted = (3 * 0.6 * 0.6 + 3 * 0.4 * 0.5 + 0.6 * 0.2) / 4
    got = quantile_term(pred, target, 0.6, 0.05, core=0.45, core_weight=2.0)
    assert got.item() == pytest.approx(100 * weighted)
    loss = CombinedLoss(
        high_penalty_weight=0,
        ssim_weight=0,
        high_threshold=0.5,
        quantile_weight=1.0,
        quantile_tau=0.6,
        quantile_echo=0.05,
        quantile_core=0.45,
        quantile_core_weight=2.0,
    )
    assert loss(pred, target)["quantile"].item() == pytest.approx(100 * weighted)
