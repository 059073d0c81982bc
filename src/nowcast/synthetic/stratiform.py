"""Stratiform rain: a large-scale pattern carried by the wind, with a bright band.

Contract
--------
:class:`Stratiform` draws a power-law random field on a coarse grid (about 4 km),
moves it with the steering wind and lets it evolve (features of 50 km decorrelate
over ``lifetime_s``, smaller ones faster), and thresholds it so that ``cover`` of
the domain rains, saturating smoothly (``tanh``) at ``peak_dbz`` at the ground.
The raining area breathes slowly (a cycle of a few hours), so sequences see growth
or decay. At height the surface value is changed by
:func:`~nowcast.synthetic.cells.stratiform_offset` (bright band below the freezing
level, snow above), which also sets the echo top.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from nowcast.synthetic.cells import stratiform_offset
from nowcast.synthetic.domain import Domain
from nowcast.synthetic.texture import (
    SpectralField,
    Upsampler,
    power_law,
    scale_lifetime,
)

F32 = np.float32
#: value written where there is no rain (well below the 0 dBZ floor)
NO_ECHO = -50.0
#: size of the coarse grid's cells (km) the pattern is drawn on
COARSE_KM = 4.0


class Stratiform:
    """A drifting, evolving stratiform rain area.

    Parameters
    ----------
    rng
        Seeded generator.
    domain
        The grid.
    wind_ms
        Steering wind ``(u, v)``.
    cover
        Fraction of the domain raining on average (0-1).
    peak_dbz
        About the strongest surface rain.
    lifetime_s
        Decorrelation time of 50 km features.
    freezing_km, bright_band_dbz
        The melting layer.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        domain: Domain,
        wind_ms: tuple[float, float],
        cover: float,
        peak_dbz: float,
        lifetime_s: float,
        freezing_km: float,
        bright_band_dbz: float,
    ) -> None:
        factor = max(1, int(round(COARSE_KM / domain.dx_km)))
        nodes = Upsampler.nodes_for(domain.size, factor)
        spacing = domain.dx_km * factor
        self._field = SpectralField(
            rng,
            nodes,
            spacing,
            power_law(3.2, largest_km=150.0, smallest_km=1.2 * spacing),
            scale_lifetime(lifetime_s),
            wind_ms,
        )
        self._up = Upsampler(domain.size, factor, nodes)
        self._threshold = float(ndtri(1.0 - cover))
        self._peak = float(peak_dbz)
        self._slope = 1.3 / (2.5 - self._threshold)
        self._period_s = rng.uniform(3.0, 8.0) * 3600.0
        self._cycle_phase = rng.uniform(0.0, 2.0 * np.pi)
        self.offset = stratiform_offset(
            domain.z, freezing_km, bright_band_dbz, domain.dz_km
        )

    def surface(self, t: float) -> np.ndarray:
        """``(y, x)`` surface dBZ at ``t``; :data:`NO_ECHO` where it does not rain."""
        g = self._up(self._field.at(t)[0])
        breathe = 0.35 * np.sin(2.0 * np.pi * t / self._period_s + self._cycle_phase)
        g -= F32(self._threshold + breathe)
        g *= F32(self._slope)
        rain = g > 0
        np.tanh(g, out=g)
        g *= F32(self._peak)
        g[~rain] = NO_ECHO
        return g

    def render(self, volume: np.ndarray, t: float) -> None:
        """Write the stratiform volume into ``volume`` (``(z, y, x)``, overwritten)."""
        np.add(self.surface(t)[None], self.offset[:, None, None], out=volume)
