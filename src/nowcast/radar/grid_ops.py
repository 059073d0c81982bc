"""Grid operations between the radar grid and the model grid, in torch.

Contract
--------
- :func:`pool` averages ``factor x factor`` blocks of every level (500 -> 250 for the
  default factor 2), ignoring NaN: a block with some coverage gets the mean of its
  covered pixels, a block with none stays NaN. Averaging is in dBZ, as the training
  strategy specifies. Sizes that are not a multiple of ``factor`` are refused.
- :func:`upsample` brings ``(..., z, y, x)`` volumes back to a target ``(y, x)`` size
  by bicubic interpolation, level by level (levels are never mixed), and clamps the
  result to ``[dbz_min, dbz_max]`` (bicubic overshoots near sharp cores). NaN
  (no coverage) is carried by nearest-neighbour upsampling of the mask.
- Both take numpy arrays or tensors and return the same kind; tensors stay on their
  device, so the daemon runs them on the GPU beside the model.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _as_tensor(a: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
    if isinstance(a, torch.Tensor):
        return a, False
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)), True


def pool(volume: np.ndarray | torch.Tensor, factor: int = 2):
    """NaN-aware ``factor x factor`` block mean over the last two axes.

    Parameters
    ----------
    volume
        ``(..., y, x)`` dBZ, NaN for no coverage.
    factor
        Block size; 1 returns the input unchanged.

    Returns
    -------
    Same type as ``volume``, ``(..., y // factor, x // factor)``.

    Notes
    -----
    The block sums are added from ``factor**2`` strided views (no pooling kernel):
    on a 500 x 500 x 18 scan this is ~5x faster than ``avg_pool2d`` on the CPU, and
    the same code runs on tensors on the GPU.
    """
    if factor == 1:
        return volume
    *_, ny, nx = volume.shape
    if ny % factor or nx % factor:
        raise ValueError(
            f"grid {ny} x {nx} is not a multiple of the pool factor {factor} "
            "(grid.pool_factor)"
        )
    if isinstance(volume, torch.Tensor):
        x = volume.float()
        missing = torch.isnan(x)
        filled = torch.where(missing, 0.0, x)
        count = (~missing).float()
    else:
        x = np.asarray(volume, dtype=np.float32)
        missing = np.isnan(x)
        filled = np.where(missing, np.float32(0.0), x)
        count = (~missing).astype(np.float32)
    total = filled[..., 0::factor, 0::factor] * 1.0
    n = count[..., 0::factor, 0::factor] * 1.0
    for i in range(factor):
        for j in range(factor):
            if i or j:
                total += filled[..., i::factor, j::factor]
                n += count[..., i::factor, j::factor]
    if isinstance(total, torch.Tensor):
        return torch.where(n > 0, total / n.clamp(min=1), torch.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / n  # 0 / 0: a block with no coverage stays NaN


def upsample(
    volume: np.ndarray | torch.Tensor,
    size: tuple[int, int],
    dbz_min: float = 0.0,
    dbz_max: float = 95.0,
):
    """Bicubic upsampling of ``(..., y, x)`` fields to ``size`` = ``(ny, nx)``.

    Each 2D field (each level of each lead) is interpolated on its own. NaN are
    filled with ``dbz_min`` for the interpolation and put back where the
    nearest-neighbour upsampled mask says there was no coverage.
    """
    t, was_numpy = _as_tensor(volume)
    *lead, ny, nx = t.shape
    if (ny, nx) == tuple(size):
        out = t.clamp(dbz_min, dbz_max)
        return out.numpy() if was_numpy else out
    flat = t.reshape(1, -1, ny, nx).float()
    valid = torch.isfinite(flat)
    filled = torch.where(valid, flat, dbz_min)
    out = F.interpolate(filled, size=size, mode="bicubic", align_corners=False)
    out = out.clamp_(dbz_min, dbz_max)
    if not bool(valid.all()):
        mask = F.interpolate(valid.float(), size=size, mode="nearest") > 0.5
        out = torch.where(mask, out, torch.nan)
    out = out.reshape(*lead, *size)
    return out.numpy() if was_numpy else out
