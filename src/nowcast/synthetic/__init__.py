"""The synthetic 3D radar: physically plausible storms, deterministic from a seed.

Real volumes with 18 levels are scarce, so the project makes its own: the demo's
radar feed, the test fixtures and most of the training data.

Contract
--------
- :data:`REGIMES` = ``("advection", "multicell", "supercell")``; ``"mixed"`` is
  accepted too and superposes all three in one scene (stratiform rain with embedded
  cells, a multicell cluster and a supercell); it is not a fourth training regime.
- :func:`generate_sequence` ``(regime, n_scans, *, seed, size=500, levels=18,
  dx_km=1.0, interval_s=300, start=None, params=None)`` returns a
  :class:`SyntheticSequence`: ``frames`` float32 ``(t, z, y, x)`` dBZ (0 = no echo,
  NaN only outside coverage with ``coverage_mask``), ``times`` (UTC), ``motion``
  float32 ``(t, 2, y, x)`` m/s (x then y component; the true advecting column
  motion), ``regime``, ``grid`` (:class:`nowcast.radar.Grid`), ``meta`` (the drawn
  environment) and ``scans()`` -> list of :class:`nowcast.radar.Scan`. An unknown
  regime raises ``ValueError`` listing the valid ones.
- :class:`Simulator` renders the same sequence one scan at a time (long feeds).

Modules: :mod:`~nowcast.synthetic.cells` (analytic shapes and profiles),
:mod:`~nowcast.synthetic.texture` (drifting random fields),
:mod:`~nowcast.synthetic.stratiform`, :mod:`~nowcast.synthetic.supercell`,
:mod:`~nowcast.synthetic.regimes` (the scenes) and
:mod:`~nowcast.synthetic.generator` (rendering).
"""

from nowcast.synthetic.generator import (
    DEFAULT_START,
    Simulator,
    SyntheticSequence,
    generate_sequence,
)
from nowcast.synthetic.regimes import MIXED, REGIMES

__all__ = [
    "DEFAULT_START",
    "MIXED",
    "REGIMES",
    "Simulator",
    "SyntheticSequence",
    "generate_sequence",
]
