"""Phases: settings from the config, schedules, loss weights, the two rules."""

from __future__ import annotations

import math

import pytest
import torch

from nowcast.config import load_config
from nowcast.curriculum.phases import (
    AreaRatioRule,
    PhaseScheduler,
    SettleRule,
    make_loss,
    make_optimizer,
    phase_config,
    phase_epochs,
)


def _opt(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def _lrs(sched: PhaseScheduler, losses) -> list[float]:
    out = []
    for loss in losses:
        out.append(sched.lr)
        sched.optimizer.step()
        sched.step(loss)
    return out


def test_phase_settings_follow_the_strategy():
    cur = load_config(None).curriculum
    p1, p2, p3 = (phase_config(cur, n) for n in (1, 2, 3))
    assert (p1.lr, p2.lr, p3.lr) == (1e-3, 1e-4, 1e-5)
    kinds = (p1.scheduler, p2.scheduler, p3.scheduler)
    assert kinds == ("constant", "plateau", "cosine")
    assert p1.warmup_epochs > 0 and p2.plateau_patience == 4
    assert (p1.high_penalty_weight, p2.high_penalty_weight, p3.high_penalty_weight) == (
        100.0,
        50.0,
        25.0,
    )
    assert (p1.ssim_weight, p2.ssim_weight, p3.ssim_weight) == (0.1, 20.0, 30.0)
    assert (p1.grad_clip, p2.grad_clip, p3.grad_clip) == (0.0, 0.0, 0.1)
    assert phase_epochs(p1) == range(0, 26)
    assert phase_epochs(p2) == range(26, 76)
    assert phase_epochs(p3, 1) == range(76, 77)
    assert cur.huber_delta == 0.1 and cur.area_ratio_bound == 1.2
    with pytest.raises(ValueError, match="1, 2 or 3"):
        phase_config(cur, 4)


def test_optimizer_and_loss_weights_from_the_phase():
    cur = load_config(None).curriculum
    p2 = phase_config(cur, 2)
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], p2)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    loss = make_loss(cur, p2, 0.0, 70.0)
    assert (loss.high_penalty_weight, loss.ssim_weight) == (50.0, 20.0)
    assert loss.high_threshold == pytest.approx(40.0 / 70.0)
    assert loss.huber_delta == 0.1
    assert loss.event_weight == 0.0  # off by default, in unit range when on
    assert loss.event_thresholds == pytest.approx((20.0 / 70.0, 35.0 / 70.0))
    assert loss.event_width == pytest.approx(2.0 / 70.0)
    on = cur.model_copy(update={"event_loss_weight": 0.5})
    assert make_loss(on, p2, 0.0, 70.0).event_weight == 0.5
    assert loss.quantile_core_weight == 0.0  # off by default, in unit range when on
    cores = cur.model_copy(update={"quantile_core_weight": 4.0})
    cored = make_loss(cores, p2, 0.0, 70.0)
    assert cored.quantile_core_weight == 4.0
    assert cored.quantile_core == pytest.approx(30.0 / 70.0)


def test_warmup_is_linear_then_constant():
    phase = phase_config(load_config(None).curriculum, 1)  # lr 1e-3, warm-up 2
    sched = PhaseScheduler(_opt(), phase, 6)
    lrs = _lrs(sched, [1.0] * 5)
    assert lrs == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3, 1e-3])


def test_plateau_halves_after_patience():
    phase = phase_config(load_config(None).curriculum, 2)  # patience 4, factor 0.5
    sched = PhaseScheduler(_opt(), phase, 20)
    lrs = _lrs(sched, [1.0, 0.5] + [0.6] * 8)
    assert lrs[:7] == pytest.approx([1e-4] * 7)
    assert lrs[7] == pytest.approx(5e-5)  # 5 bad epochs after the best (0.5)


def test_cosine_anneals_to_zero_over_the_phase():
    phase = phase_config(load_config(None).curriculum, 3)
    n = 5
    sched = PhaseScheduler(_opt(), phase, n)
    lrs = _lrs(sched, [1.0] * n)
    want = [1e-5 * (1 + math.cos(math.pi * k / n)) / 2 for k in range(n)]
    assert lrs == pytest.approx(want, rel=1e-6)
    assert sched.lr == pytest.approx(0.0, abs=1e-12)


def test_scheduler_state_round_trip():
    phase = phase_config(load_config(None).curriculum, 2)
    a = PhaseScheduler(_opt(), phase, 20)
    _lrs(a, [1.0, 0.5, 0.6, 0.6])
    opt_b = _opt()
    b = PhaseScheduler(opt_b, phase, 20)
    opt_b.load_state_dict(a.optimizer.state_dict())
    b.load_state_dict(a.state_dict())
    assert _lrs(a, [0.6] * 4) == _lrs(b, [0.6] * 4)


def test_settle_rule_stops_after_patience():
    rule = SettleRule(patience=2)
    assert [rule.update(v) for v in (1.0, 0.9, 0.95, 0.9)] == [
        False,
        False,
        False,
        True,
    ]
    assert not any(SettleRule(0).update(1.0) for _ in range(5))
    again = SettleRule(2)
    again.load_state_dict(rule.state_dict())
    assert again.update(1.0)


def test_area_ratio_rule_raises_ssim_once_at_mid_phase_2():
    cur = load_config(None).curriculum
    loss = make_loss(cur, phase_config(cur, 2))
    rule = AreaRatioRule.for_phase(cur, 2, 10)
    assert rule.check_at == 5
    for i, ratio in enumerate([2.0, 1.5, 1.4, 1.3, 1.3]):
        assert rule.update(i, ratio, loss) is None  # before mid-phase
    message = rule.update(5, 1.3, loss)
    assert loss.ssim_weight == 30.0
    assert "SSIM weight 20 -> 30" in message and "1.2" in message
    assert rule.update(6, 3.0, loss) is None  # once only


def test_area_ratio_rule_leaves_thin_cells_and_other_phases():
    cur = load_config(None).curriculum
    loss = make_loss(cur, phase_config(cur, 2))
    rule = AreaRatioRule.for_phase(cur, 2, 4)
    for i, ratio in enumerate([1.0, 1.1, 1.0]):
        assert rule.update(i, ratio, loss) is None
    assert loss.ssim_weight == 20.0
    loss1 = make_loss(cur, phase_config(cur, 1))
    rule1 = AreaRatioRule.for_phase(cur, 1, 4)
    for i in range(4):
        assert rule1.update(i, 5.0, loss1) is None
    assert loss1.ssim_weight == 0.1


@pytest.mark.parametrize("number", [1, 2, 3])
def test_residual_layers_learn_at_a_scaled_rate_through_every_schedule(number):
    from nowcast.model import build_network

    cur = load_config(None).curriculum
    assert cur.residual_lr_scale == 0.01
    phase = phase_config(cur, number)
    net = build_network(
        hidden_channels=[4],
        stem_channels=4,
        stem_strides=[[1, 2, 2]],
        groups=2,
        head="advection",
        flow_input=True,
    )
    residual = {id(p) for p in net.residual_parameters()}
    assert residual and residual == {
        id(p) for m in (net.motion, net.change) for p in m.parameters()
    }
    opt = make_optimizer(net, phase, residual_lr_scale=cur.residual_lr_scale)
    main, res = opt.param_groups
    assert {id(p) for p in res["params"]} == residual
    assert len(main["params"]) + len(res["params"]) == len(list(net.parameters()))
    sched = PhaseScheduler(opt, phase, 8)
    for loss in [1.0, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]:
        assert res["lr"] == pytest.approx(0.01 * main["lr"])
        opt.step()
        sched.step(loss)
    plain = build_network(
        hidden_channels=[4],
        stem_channels=4,
        stem_strides=[[1, 2, 2]],
        groups=2,
        head="plain",
        flow_input=False,
    )
    assert len(make_optimizer(plain, phase, residual_lr_scale=0.01).param_groups) == 1
