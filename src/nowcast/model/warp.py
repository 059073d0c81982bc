"""Differentiable semi-Lagrangian warping of fields along horizontal motion.

Contract
--------
- Motion and displacement fields are ``(B, 2, Y, X)`` in grid pixels: channel 0 is
  the x component (along the last axis), channel 1 the y component; positive ``x``
  moves echoes towards larger column indices. This is the order pysteps uses.
- :func:`warp` is a *backward* warp: ``out[..., y, x] = field[..., y - dy, x - dx]``
  sampled bilinearly with :func:`torch.nn.functional.grid_sample`
  (``align_corners=True``, so pixel ``i`` sits exactly at ``-1 + 2 i / (n - 1)``
  and an integer displacement is an exact shift). ``padding_mode="zeros"`` means
  no echo flows in from outside the grid; use ``"border"`` for motion fields.
- :func:`compose_displacement` advances the accumulated backward displacement by
  one step: ``D_k(x) = D_{k-1}(x) + v_k(x - D_{k-1}(x))`` (the motion is sampled
  where the backward trajectory has reached, as pysteps' semi-Lagrangian scheme
  does). The forecast at lead ``k`` is then one warp of the last observation by
  ``D_k``: one interpolation per lead, so no blur accumulates over leads.
- :func:`steady_displacements` composes a motion held steady for ``n`` steps:
  ``(B, n, 2, Y, X)``, the displacements of optical-flow extrapolation.
- :func:`warp_masked` is :func:`warp` where pixels outside a mask are sampled
  from the field capped by a ceiling (the storm-tracked prior's "ghost"
  suppression, :mod:`nowcast.forecasters.storm_prior`).
- :func:`sources_inside` says where a backward displacement samples inside the
  grid: the pixels whose echo a warp can know (elsewhere it flows in from
  outside: the edge of a crop or of the radar's grid).
- Everything is computed in float32, also under autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "compose_displacement",
    "sources_inside",
    "steady_displacements",
    "warp",
    "warp_masked",
]


def _sampling_grid(disp: torch.Tensor) -> torch.Tensor:
    """``(B, 2, Y, X)`` px displacement -> ``(B, Y, X, 2)`` normalised sample grid."""
    _, _, ny, nx = disp.shape
    xs = torch.arange(nx, device=disp.device, dtype=torch.float32)
    ys = torch.arange(ny, device=disp.device, dtype=torch.float32)
    px = xs.view(1, 1, nx) - disp[:, 0]
    py = ys.view(1, ny, 1) - disp[:, 1]
    gx = px * (2.0 / max(nx - 1, 1)) - 1.0
    gy = py * (2.0 / max(ny - 1, 1)) - 1.0
    return torch.stack((gx, gy), dim=-1)


def warp(
    field: torch.Tensor, disp: torch.Tensor, padding_mode: str = "zeros"
) -> torch.Tensor:
    """Backward-warp ``field`` by ``disp`` pixels.

    Parameters
    ----------
    field
        ``(B, C, Y, X)``; ``C`` may be the vertical levels of a volume (the same
        horizontal displacement moves the whole column).
    disp
        ``(B, 2, Y, X)`` displacement in pixels (x, y), defined on the output grid.
    padding_mode
        ``"zeros"`` (nothing flows in) or ``"border"`` (edge values extend).

    Returns
    -------
    torch.Tensor
        ``(B, C, Y, X)`` float32: ``field`` sampled at ``(x - dx, y - dy)``.
    """
    if field.ndim != 4 or disp.ndim != 4 or disp.shape[1] != 2:
        raise ValueError(
            f"warp needs field (B, C, Y, X) and disp (B, 2, Y, X), got "
            f"{tuple(field.shape)} and {tuple(disp.shape)}"
        )
    if field.shape[0] != disp.shape[0] or field.shape[-2:] != disp.shape[-2:]:
        raise ValueError(
            f"field {tuple(field.shape)} and disp {tuple(disp.shape)} differ in "
            "batch or grid size"
        )
    with torch.autocast(device_type=field.device.type, enabled=False):
        grid = _sampling_grid(disp.float())
        return F.grid_sample(
            field.float(),
            grid,
            mode="bilinear",
            padding_mode=padding_mode,
            align_corners=True,
        )


def compose_displacement(
    disp: torch.Tensor | None, motion: torch.Tensor
) -> torch.Tensor:
    """One semi-Lagrangian step: ``D_k = D_{k-1} + v_k(x - D_{k-1})``.

    Parameters
    ----------
    disp
        The accumulated backward displacement ``D_{k-1}`` ``(B, 2, Y, X)``, or
        ``None`` for the first step (``D_0 = 0``).
    motion
        ``v_k``: the motion of step ``k`` in px/step, ``(B, 2, Y, X)``.
    """
    if disp is None:
        return motion.float()
    return disp.float() + warp(motion, disp, padding_mode="border")


def steady_displacements(motion: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``D_1 .. D_n`` ``(B, n, 2, Y, X)`` of ``motion`` ``(B, 2, Y, X)`` held steady."""
    disp, out = None, []
    for _ in range(n_steps):
        disp = compose_displacement(disp, motion.float())
        out.append(disp)
    return torch.stack(out, dim=1)


def warp_masked(
    field: torch.Tensor,
    disp: torch.Tensor,
    inside: torch.Tensor | None = None,
    ceiling: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`warp`, with pixels outside ``inside`` sampled from ``min(field,
    ceiling)``.

    ``inside`` ``(B, 1, Y, X)`` in [0, 1] and ``ceiling`` ``(B, 1, Y, X)`` (same
    units as ``field``) go together; without a ceiling this is :func:`warp`.
    """
    moved = warp(field, disp)
    if ceiling is None:
        return moved
    inside = inside.float()
    behind = warp(torch.minimum(field.float(), ceiling.float()), disp)
    return inside * moved + (1.0 - inside) * behind


def sources_inside(disp: torch.Tensor, tolerance: float = 1e-3) -> torch.Tensor:
    """Where ``disp`` ``(..., 2, Y, X)`` px samples inside the grid: bool
    ``(..., Y, X)`` (a bilinear sample with every corner inside)."""
    lead = disp.shape[:-3]
    flat = disp.reshape(-1, *disp.shape[-3:]).float()
    ones = torch.ones(flat.shape[0], 1, *flat.shape[-2:], device=disp.device)
    inside = warp(ones, flat)[:, 0] > 1.0 - tolerance
    return inside.reshape(*lead, *disp.shape[-2:])
