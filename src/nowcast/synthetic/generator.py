"""The sequence generator: scenes rendered to radar volumes, in memory or scan by scan.

Contract
--------
- :func:`generate_sequence` returns a :class:`SyntheticSequence`: ``frames``
  float32 ``(t, z, y, x)`` dBZ (0 = no echo; NaN only outside the radar's range
  ring when ``params.coverage_mask`` is on), ``times`` (UTC, ``interval_s`` apart),
  ``motion`` float32 ``(t, 2, y, x)`` in m/s (x then y component along the grid
  axes: the column motion that carries the echo at each pixel: the steering wind,
  and each storm's own velocity over its footprint), ``regime``, ``grid`` (a
  :class:`nowcast.radar.Grid` in metres with an azimuthal-equidistant mapping and
  its origin) and ``meta`` (the environment drawn: ``wind_ms``, ``shear_ms_per_km``,
  ``freezing_level_km``, and ``storm_motion_ms`` / ``system_motion_ms`` where a
  supercell / multicell cluster exists). Nothing touches the disk.
- :class:`Simulator` renders one scan at a time (:meth:`Simulator.render`,
  :meth:`Simulator.scan`), for long feeds (``nowcast simulate``) that must not hold
  every frame in memory; :func:`generate_sequence` is built on it.
- Determinism: the output depends only on the arguments; the same arguments give
  the same bytes. Frames do not depend on ``start``.
- ``size``, ``levels`` and ``dx_km`` come from the arguments; ``params`` gives the
  vertical extent (``bottom_km``, ``top_km``), texture, coverage, site and every
  regime parameter. Storm sizes are in km, so a coarser ``dx_km`` shows the same
  storms with fewer pixels.
- A frame is drawn in this order: stratiform rain (or nothing), convective cells and
  supercells composited by maximum, radar texture on the echo (two drifting
  band-pass fields mixed differently at each level plus fresh noise each scan, of
  standard deviation ``noise_dbz``), the 0 dBZ floor, the coverage mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from nowcast.config import SyntheticConfig
from nowcast.radar import Grid, Scan
from nowcast.synthetic.cells import MotionSum
from nowcast.synthetic.domain import Domain
from nowcast.synthetic.regimes import MIXED, build_scene
from nowcast.synthetic.stratiform import NO_ECHO
from nowcast.synthetic.texture import SpectralField, band_pass, scale_lifetime

F32 = np.float32
#: the start time of sequences when none is given
DEFAULT_START = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
_CODES = {"advection": 1, "multicell": 2, "supercell": 3, MIXED: 4}
#: share of the texture's variance that is fresh noise each scan
FRESH = 0.35


@dataclass(frozen=True)
class SyntheticSequence:
    """A simulated sequence of radar volumes (see the module doc)."""

    frames: np.ndarray
    times: list[datetime]
    motion: np.ndarray
    regime: str
    grid: Grid
    meta: dict[str, Any] = field(default_factory=dict)

    def scans(self) -> list[Scan]:
        """The frames as :class:`nowcast.radar.Scan` objects (sharing memory)."""
        return [Scan(t, self.frames[k], self.grid) for k, t in enumerate(self.times)]


def _check(regime: str, n_scans: int, seed: int, interval_s: float) -> None:
    if regime not in _CODES:
        raise ValueError(
            f"unknown regime {regime!r}: choose one of {', '.join(_CODES)}"
        )
    if int(n_scans) < 1:
        raise ValueError(f"n_scans must be at least 1, got {n_scans}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")


class Simulator:
    """Renders the scans of one simulated sequence on demand.

    Takes the same arguments as :func:`generate_sequence`; building it draws the
    whole scene, each :meth:`render` call draws one volume.
    """

    def __init__(
        self,
        regime: str,
        n_scans: int,
        *,
        seed: int,
        size: int = 500,
        levels: int = 18,
        dx_km: float = 1.0,
        interval_s: float = 300,
        start: datetime | None = None,
        params: SyntheticConfig | None = None,
    ) -> None:
        _check(regime, n_scans, seed, interval_s)
        p = params or SyntheticConfig()
        self.regime = regime
        self.n_scans = int(n_scans)
        self.interval_s = float(interval_s)
        start = DEFAULT_START if start is None else start
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        self.start = start.astimezone(timezone.utc)
        self.domain = Domain.make(size, levels, dx_km, p.bottom_km, p.top_km)
        self.grid = self.domain.grid(
            p.site_latitude, p.site_longitude, p.site_altitude_m
        )
        self._seed = (int(seed), _CODES[regime])
        scene_seeds, texture_seed = np.random.SeedSequence(self._seed).spawn(2)
        horizon = (self.n_scans - 1) * self.interval_s
        self.scene = build_scene(regime, scene_seeds, self.domain, p, horizon)
        self._noise = float(p.noise_dbz)
        self._texture = SpectralField(
            np.random.default_rng(texture_seed),
            self.domain.size,
            self.domain.dx_km,
            band_pass(largest_km=20.0, smallest_km=1.2 * self.domain.dx_km),
            scale_lifetime(3600.0, floor_s=300.0),
            self.scene.env.wind,
            count=2,
        )
        turn = 0.45 * (self.domain.z - self.domain.z[0])
        amp = self._noise / np.sqrt(1.0 + FRESH**2)
        self._mix = (
            (amp * np.cos(turn)).astype(F32),
            (amp * np.sin(turn)).astype(F32),
        )
        self._outside = (
            ~self.domain.coverage(p.coverage_range_km) if p.coverage_mask else None
        )

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.scene.meta)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.domain.nz, self.domain.size, self.domain.size)

    def time(self, index: int) -> datetime:
        return self.start + timedelta(seconds=index * self.interval_s)

    def render(
        self, index: int, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Volume ``(z, y, x)`` dBZ and motion ``(2, y, x)`` m/s of scan ``index``.

        ``out``, a float32 array of the volume's shape, is filled when given.
        """
        t = index * self.interval_s
        volume = np.empty(self.shape, F32) if out is None else out
        scene = self.scene
        if scene.stratiform is not None:
            scene.stratiform.render(volume, t)
        else:
            volume.fill(NO_ECHO)
        motion = MotionSum(scene.env.wind, self.shape[1:])
        tilt = scene.env.tilt_km
        for shield in scene.shields:
            shield.render(volume, motion, self.domain, t)
        scene.cells.render(volume, motion, self.domain, t, tilt)
        for storm in scene.supercells:
            storm.render(volume, motion, self.domain, t, tilt)
        if self._noise > 0:
            self._add_texture(volume, t)
        np.maximum(volume, 0.0, out=volume)
        if self._outside is not None:
            volume[:, self._outside] = np.nan
        return volume, motion.field()

    def _add_texture(self, volume: np.ndarray, t: float) -> None:
        tex = self._texture.at(t)
        rng = np.random.default_rng([*self._seed, 99, int(round(t * 1000))])
        fresh = rng.standard_normal(tex.shape[1:], dtype=F32)
        fresh *= F32(FRESH)
        tex[0] += fresh
        a, b = self._mix
        level = np.empty(tex.shape[1:], F32)
        scratch = np.empty(tex.shape[1:], F32)
        for k in range(volume.shape[0]):
            np.multiply(tex[0], a[k], out=level)
            np.multiply(tex[1], b[k], out=scratch)
            level += scratch
            echo = volume[k] > 0
            level *= echo
            volume[k] += level

    def scan(self, index: int) -> Scan:
        """Scan ``index`` as a :class:`nowcast.radar.Scan`."""
        volume, _ = self.render(index)
        return Scan(self.time(index), volume, self.grid)


def generate_sequence(
    regime: str,
    n_scans: int,
    *,
    seed: int,
    size: int = 500,
    levels: int = 18,
    dx_km: float = 1.0,
    interval_s: float = 300,
    start: datetime | None = None,
    params: SyntheticConfig | None = None,
) -> SyntheticSequence:
    """Simulate ``n_scans`` radar volumes of one regime, in memory.

    Parameters
    ----------
    regime
        ``"advection"``, ``"multicell"``, ``"supercell"`` or ``"mixed"`` (the three
        superposed in one scene; see :mod:`nowcast.synthetic.regimes`).
    n_scans
        Number of volumes (>= 1).
    seed
        Non-negative integer; everything drawn follows from it.
    size
        Grid points each way (>= 16).
    levels
        Number of levels (>= 1), evenly spaced from ``params.bottom_km`` to
        ``params.top_km``.
    dx_km
        Grid spacing.
    interval_s
        Time between volumes.
    start
        Time of the first volume (UTC; a naive time is taken as UTC); default
        :data:`DEFAULT_START`, 2024-06-01 12:00 UTC.
    params
        Simulator settings (``[synthetic]``); the defaults when ``None``.

    Returns
    -------
    SyntheticSequence

    Raises
    ------
    ValueError
        An unknown regime (the message lists the valid ones) or a bad size, count,
        seed or interval.
    """
    sim = Simulator(
        regime, n_scans, seed=seed, size=size, levels=levels, dx_km=dx_km,
        interval_s=interval_s, start=start, params=params,
    )
    frames = np.empty((sim.n_scans, *sim.shape), F32)
    motion = np.empty((sim.n_scans, 2, *sim.shape[1:]), F32)
    for k in range(sim.n_scans):
        _, motion[k] = sim.render(k, out=frames[k])
    return SyntheticSequence(
        frames=frames,
        times=[sim.time(k) for k in range(sim.n_scans)],
        motion=motion,
        regime=regime,
        grid=sim.grid,
        meta=sim.meta,
    )


