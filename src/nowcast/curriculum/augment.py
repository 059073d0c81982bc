"""Augmentation of training samples: flips, quarter turns and crops.

Contract
--------
- A transform acts on the last two axes ``(y, x)`` of every array of a sample the
  same way. Scalar fields (``inputs``, ``targets``, ``mask``, the storm prior's
  ``prior_mask`` and ``prior_ceiling``) are only moved; vector fields (``flow``,
  ``motion``, ``prior_disp``, ``prior_motion``: ``(..., 2, y, x)``, channel 0 along x,
  channel 1 along y, in px/step) are moved **and** their components turned, so
  that a vector still points where the echo goes.
- :class:`Dihedral` ``(flip, turns)``: first a mirror along x (columns reversed,
  when ``flip``), then ``turns`` quarter turns with :func:`numpy.rot90` on
  ``(y, x)``. One quarter turn sends the pixel ``(y, x)`` to ``(nx - 1 - x, y)``,
  so a motion ``(u, v)`` becomes ``(v, -u)``; the mirror makes ``(u, v)``
  ``(-u, v)``. The eight transforms are the symmetries of the square; odd turns
  need a square grid (:func:`random_dihedral` only draws even turns otherwise).
- :func:`crop_box` picks a ``size x size`` window (random with an ``rng``, else
  centred); :func:`apply` crops and transforms a sample dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: sample keys holding vector fields (component axis -3)
VECTOR_KEYS = frozenset({"flow", "motion", "prior_disp", "prior_motion"})
#: sample keys holding fields on the grid
FIELD_KEYS = (
    frozenset({"inputs", "targets", "mask", "prior_mask", "prior_ceiling"})
    | VECTOR_KEYS
)


@dataclass(frozen=True)
class Dihedral:
    """A mirror along x (optional) followed by ``turns`` quarter turns."""

    flip: bool = False
    turns: int = 0

    @property
    def identity(self) -> bool:
        return not self.flip and self.turns % 4 == 0

    def field(self, a: np.ndarray) -> np.ndarray:
        """Move a ``(..., y, x)`` field."""
        if self.flip:
            a = a[..., ::-1]
        return np.rot90(a, self.turns % 4, axes=(-2, -1))

    def vector(self, a: np.ndarray) -> np.ndarray:
        """Move a ``(..., 2, y, x)`` vector field and turn its components."""
        a = self.field(a)
        u, v = a[..., 0, :, :], a[..., 1, :, :]
        if self.flip:
            u = -u
        for _ in range(self.turns % 4):
            u, v = v, -u
        return np.stack([u, v], axis=-3)


def random_dihedral(rng: np.random.Generator, square: bool = True) -> Dihedral:
    """One of the eight symmetries (four when the grid is not square)."""
    turns = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    return Dihedral(flip=bool(rng.integers(2)), turns=turns)


def crop_box(
    shape: tuple[int, int], size: int, rng: np.random.Generator | None = None
) -> tuple[slice, slice]:
    """``(y, x)`` slices of a ``size x size`` window (random, or centred)."""
    ny, nx = shape
    if size > min(ny, nx):
        raise ValueError(f"crop {size} is larger than the grid {ny} x {nx}")
    if rng is None:
        y0, x0 = (ny - size) // 2, (nx - size) // 2
    else:
        y0, x0 = int(rng.integers(ny - size + 1)), int(rng.integers(nx - size + 1))
    return slice(y0, y0 + size), slice(x0, x0 + size)


def apply(
    sample: Mapping[str, Any],
    transform: Dihedral | None = None,
    box: tuple[slice, slice] | None = None,
    keys: Iterable[str] = FIELD_KEYS,
) -> dict[str, Any]:
    """Crop (``box``) then transform the grid arrays of ``sample``; copy the rest."""
    out = dict(sample)
    for key in keys:
        a = out.get(key)
        if a is None:
            continue
        if box is not None:
            a = a[..., box[0], box[1]]
        if transform is not None and not transform.identity:
            a = transform.vector(a) if key in VECTOR_KEYS else transform.field(a)
        out[key] = np.ascontiguousarray(a)
    return out
