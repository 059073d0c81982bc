"""Pooling and upsampling pinned on known fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nowcast.radar import pool, upsample


def test_pool_block_means():
    field = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    out = pool(field, 2)
    np.testing.assert_array_equal(out, [[[2.5, 4.5], [10.5, 12.5]]])


def test_pool_ignores_nan_and_keeps_uncovered_blocks_nan():
    field = np.array(
        [[[np.nan, 10, np.nan, np.nan], [20, 30, np.nan, np.nan],
          [1, 1, 1, 1], [1, 1, 1, 1]]], dtype=np.float32,
    )
    out = pool(field, 2)
    assert out[0, 0, 0] == pytest.approx(20.0)  # mean of the three covered
    assert np.isnan(out[0, 0, 1])
    assert out[0, 1, 0] == 1.0


def test_pool_levels_independent_and_leading_dims():
    field = np.stack([np.full((6, 6), 10.0), np.full((6, 6), 40.0)]).astype(np.float32)
    out = pool(field[None], 2)  # (t, z, y, x)
    assert out.shape == (1, 2, 3, 3)
    assert np.all(out[0, 0] == 10.0) and np.all(out[0, 1] == 40.0)


def test_pool_refuses_non_multiple():
    with pytest.raises(ValueError, match="not a multiple of the pool factor 2"):
        pool(np.zeros((1, 5, 6), dtype=np.float32), 2)


def test_pool_factor_one_is_identity():
    field = np.random.default_rng(0).random((2, 5, 5)).astype(np.float32)
    assert pool(field, 1) is field


def test_upsample_smooth_field_is_reproduced():
    """A ramp comes back within 0.1 dBZ (torch's bicubic, a = -0.75, like OpenCV's).

    A constant comes back exactly."""
    fine = np.add.outer(np.arange(40.0), np.arange(40.0)).astype(np.float32) * 0.5
    coarse = pool(fine[None], 2)
    up = upsample(coarse, (40, 40), dbz_min=-100, dbz_max=100)
    assert up.shape == (1, 40, 40)
    np.testing.assert_allclose(up[0, 3:-3, 3:-3], fine[3:-3, 3:-3], atol=0.1)
    flat = upsample(np.full((1, 5, 5), 33.0, dtype=np.float32), (10, 10))
    np.testing.assert_allclose(flat, 33.0, atol=1e-5)


def test_upsample_clamps_overshoot_and_keeps_levels_apart():
    coarse = np.zeros((2, 8, 8), dtype=np.float32)
    coarse[0, 3:5, 3:5] = 90.0  # a sharp core: bicubic overshoots/undershoots
    up = upsample(coarse, (16, 16), dbz_min=0.0, dbz_max=80.0)
    assert up.min() >= 0.0 and up.max() <= 80.0
    assert np.all(up[1] == 0.0)  # level 1 untouched by level 0's core
    assert up[0, 7, 7] == pytest.approx(80.0)


def test_upsample_carries_no_coverage():
    coarse = np.full((1, 4, 4), 30.0, dtype=np.float32)
    coarse[0, 0, 0] = np.nan
    up = upsample(coarse, (8, 8))
    assert np.isnan(up[0, :2, :2]).all()
    assert np.isfinite(up[0, 2:, 2:]).all()
    assert np.isfinite(up[0, 0, 2:]).all()


def test_torch_in_torch_out_and_lead_axis():
    t = torch.full((7, 3, 5, 5), 20.0)
    up = upsample(t, (10, 10))
    assert isinstance(up, torch.Tensor) and up.shape == (7, 3, 10, 10)
    pooled = pool(up, 2)
    assert isinstance(pooled, torch.Tensor)
    torch.testing.assert_close(pooled, t)
