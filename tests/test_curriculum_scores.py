"""Validation scores of the trainer: CSI at 35 and 20 dBZ per lead from summed
counts, and the key that picks the best epoch."""

from __future__ import annotations

import math

import pytest
import torch

from nowcast.config import CurriculumConfig
from nowcast.curriculum.scores import Tally, best_key, count_events, summarise

UNIT_35, UNIT_20 = 35 / 70, 20 / 70


def _fields():
    """One sample, 2 leads, 1 level, 4 x 4: observed 40 dBZ on the left half and
    25 dBZ on the right; the forecast 40 dBZ on the top half, nothing else."""
    target = torch.zeros(1, 2, 1, 4, 4)
    target[..., :, :2] = 40 / 70
    target[..., :, 2:] = 25 / 70
    pred = torch.zeros_like(target)
    pred[..., :2, :] = 40 / 70
    mask = torch.ones_like(target)
    return pred, target, mask


def test_both_thresholds_are_counted_and_summarised():
    pred, target, mask = _fields()
    tally = Tally(2)
    for name in ("model", "persistence", "extrapolation"):
        for level, thr in enumerate((UNIT_35, UNIT_20)):
            forecast = pred if name == "model" else target
            tally.add_events(name, count_events(forecast, target, mask, thr), level)
    tally.add_losses({"total": torch.tensor(0.5)}, 1)
    # 35 dBZ: observed 8 (left half), forecast 8 (top half), 4 hits: 4 / 12
    assert tally.csi("model") == pytest.approx([1 / 3, 1 / 3])
    # 20 dBZ: observed all 16, forecast 8: 8 hits, 8 misses: 1 / 2
    assert tally.csi("model", 1) == pytest.approx([0.5, 0.5])
    val = summarise(tally)
    assert val["csi35_mean"] == pytest.approx(1 / 3)
    assert val["csi20_mean"] == pytest.approx(0.5)
    assert val["csi20_extrapolation_mean"] == pytest.approx(1.0)
    assert not val["beats_extrapolation"]


def test_best_key_selects_by_35_or_by_both():
    base = {"beats_extrapolation": True, "loss": 0.1}
    a = {**base, "csi35_mean": 0.30, "csi20_mean": 0.50}
    b = {**base, "csi35_mean": 0.31, "csi20_mean": 0.40}
    assert best_key(b) > best_key(a)  # 35 dBZ alone: b
    assert best_key(a, "csi20_35") > best_key(b, "csi20_35")  # 0.40 vs 0.355
    beaten = {**b, "beats_extrapolation": False}
    assert best_key(a, "csi20_35") > best_key(beaten, "csi20_35")
    nan20 = {**base, "csi35_mean": 0.2, "csi20_mean": math.nan}
    assert best_key(nan20, "csi20_35")[1] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="one of csi35, csi20_35"):
        best_key(a, "fss")
    assert CurriculumConfig().select_by == "csi35"
    with pytest.raises(ValueError):
        CurriculumConfig(select_by="fss")
