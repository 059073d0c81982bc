"""The three weather regimes (and their mix), as scenes of analytic storms.

Contract
--------
:func:`build_scene` turns a regime name, a seed sequence, a domain, the
:class:`~nowcast.config.SyntheticConfig` and the time span to cover into a
:class:`Scene`: an :class:`Environment` (steering wind, shear, melting layer) and
the storms living in it. Every number is drawn from the config's ranges with the
seed, so motion, growth and decay differ between seeds and repeat for a seed.

- ``advection``: stratiform rain (:class:`~nowcast.synthetic.stratiform.Stratiform`)
  with embedded convective cells, everything carried by the steady steering wind
  (cells lean downshear with height when the wind is sheared).
- ``multicell``: clusters of cells that live 20-40 minutes, growing, peaking and
  decaying; each cluster triggers new cells on its downshear flank, so it
  propagates downshear of the cell motion; cells drift toward the cluster's axis
  (and merge) and some split into two diverging cells.
- ``supercell``: a long-lived supercell moving right of the mean wind (a Bunkers
  deviation right of the shear), with a few weak ordinary cells moving with the
  wind; shear from ``supercell_shear_ms_per_km``.
- ``mixed``: all three superposed in one environment (supercell shear): stratiform
  rain with half the configured cover and embedded cells, a multicell cluster left
  of the domain centre and a supercell right of it (looking downwind).

Every convective cell (embedded, multicell, the supercell regime's ordinary cells)
grows over the first ``cell_growth_end`` of its life and decays from
``cell_decay_start``, each cell's pair drawn from those ranges with a stream of its
own, so the rest of the scene (every storm, path and lifetime) does not depend on
them; the defaults ([0.3, 0.3] and [0.6, 0.6]) give every cell 0.3 and 0.6.

Storm tracks are placed so that each storm crosses the central part of the domain
during the span it is visible; storms that die are followed by new ones, so a long
span (a demo feed) never runs dry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nowcast.config import SyntheticConfig
from nowcast.synthetic.cells import CellPopulation, Shield, stratiform_offset
from nowcast.synthetic.domain import Domain
from nowcast.synthetic.stratiform import Stratiform
from nowcast.synthetic.supercell import Supercell

REGIMES = ("advection", "multicell", "supercell")
F32 = np.float32
MIXED = "mixed"


@dataclass(frozen=True)
class Environment:
    """The storms' surroundings, steady over a sequence."""

    wind: tuple[float, float]
    shear: tuple[float, float]
    freezing_km: float
    bright_band_dbz: float
    tilt_s: float

    @property
    def tilt_km(self) -> tuple[float, float]:
        """How far a convective core leans downshear, km a km of height."""
        k = self.tilt_s / 1000.0
        return (self.shear[0] * k, self.shear[1] * k)

    def downshear(self, rng: np.random.Generator) -> np.ndarray:
        """Unit vector along the shear (random when there is none)."""
        norm = np.hypot(*self.shear)
        if norm < 1e-6:
            a = rng.uniform(0.0, 2.0 * np.pi)
            return np.array([np.cos(a), np.sin(a)])
        return np.asarray(self.shear) / norm


@dataclass
class Scene:
    """Everything drawn for one sequence."""

    regime: str
    env: Environment
    stratiform: Stratiform | None = None
    cells: CellPopulation = field(default_factory=CellPopulation.empty)
    shields: list[Shield] = field(default_factory=list)
    supercells: list[Supercell] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def _u(rng: np.random.Generator, pair, size=None):
    return rng.uniform(pair[0], pair[1], size)


def _rotate(v: np.ndarray, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def draw_environment(
    rng: np.random.Generator, p: SyntheticConfig, supercell: bool
) -> Environment:
    speed = _u(rng, p.wind_speed_ms)
    direction = rng.uniform(0.0, 2.0 * np.pi)
    wind = speed * np.array([np.cos(direction), np.sin(direction)])
    unit = wind / max(speed, 1e-6) if speed > 0 else np.array([1.0, 0.0])
    if supercell:
        size = _u(rng, p.supercell_shear_ms_per_km)
        shear = size * _rotate(unit, rng.uniform(-30, 30))
    else:
        shear = _u(rng, p.shear_ms_per_km) * _rotate(unit, rng.uniform(-90, 90))
    return Environment(
        wind=(float(wind[0]), float(wind[1])),
        shear=(float(shear[0]), float(shear[1])),
        freezing_km=float(_u(rng, p.freezing_level_km)),
        bright_band_dbz=float(_u(rng, p.bright_band_dbz)),
        tilt_s=float(p.tilt_s),
    )


def _stratiform(rng, domain, env, p: SyntheticConfig, cover_factor=1.0) -> Stratiform:
    cover = _u(rng, p.stratiform_cover) * cover_factor
    return Stratiform(
        rng, domain, env.wind, cover, _u(rng, p.stratiform_peak_dbz),
        _u(rng, p.stratiform_lifetime_min) * 60.0, env.freezing_km, env.bright_band_dbz,
    )


def scattered_cells(
    rng: np.random.Generator,
    domain: Domain,
    env: Environment,
    horizon_s: float,
    per_10k_km2: float,
    peak_dbz,
    life_min,
    top_km,
    radius_km=(3.0, 7.0),
) -> CellPopulation:
    """Cells born anywhere (steady density), carried by the wind: embedded cells."""
    life_max = life_min[1] * 60.0
    margin = np.hypot(*env.wind) * life_max / 1000.0 + 3.0 * radius_km[1]
    half = domain.half_km + margin
    mean_life = 0.5 * (life_min[0] + life_min[1]) * 60.0
    alive = per_10k_km2 * (2 * half) ** 2 / 1e4  # at once in the spawning square
    span = horizon_s + life_max
    n = int(rng.poisson(alive * span / mean_life))
    birth = np.sort(rng.uniform(-life_max, horizon_s, n))
    return CellPopulation(
        birth=birth,
        life=_u(rng, life_min, n) * 60.0,
        x=rng.uniform(-half, half, n),
        y=rng.uniform(-half, half, n),
        u=np.full(n, env.wind[0]),
        v=np.full(n, env.wind[1]),
        peak=_u(rng, peak_dbz, n),
        radius=_u(rng, radius_km, n),
        top=_u(rng, top_km, n),
        aspect=rng.uniform(1.0, 1.6, n),
        angle=rng.uniform(0.0, np.pi, n),
        phase0=np.zeros(n),
    )


def _lives(rng, life_s_range, horizon_s, lead_s) -> list[tuple[float, float]]:
    """(birth, life) of storms following each other over ``[0, horizon_s]``.

    The first is already ``lead_s`` plus some of its life old at 0; each next one
    starts 30 minutes before the previous dies.
    """
    out = []
    life = _u(rng, life_s_range)
    birth = -lead_s - rng.uniform(0.0, 0.3) * life
    while birth <= horizon_s:
        out.append((birth, life))
        birth = birth + life - 1800.0
        life = _u(rng, life_s_range)
    return out


def _place(rng, domain, birth, life, velocity, horizon_s, centre) -> np.ndarray:
    """Position at t = 0 of a storm crossing ``centre`` (+- 15 %) mid-visibility."""
    t_ref = 0.5 * (max(birth, 0.0) + min(birth + life, horizon_s))
    jitter = rng.uniform(-0.15, 0.15, 2) * domain.half_km
    at_ref = np.asarray(centre) + jitter
    return at_ref - np.asarray(velocity) * t_ref / 1000.0


def multicell_clusters(
    rng: np.random.Generator,
    domain: Domain,
    env: Environment,
    p: SyntheticConfig,
    horizon_s: float,
    slots: int,
    centres: list[np.ndarray],
) -> tuple[CellPopulation, list[Shield], list[tuple[float, float]]]:
    """Cells and trailing rain of ``slots`` chains of multicell clusters.

    Returns the cells, the shields (trailing stratiform rain, upshear of each
    cluster's centre) and each cluster's motion.
    """
    f = env.downshear(rng)
    left = np.array([-f[1], f[0]])
    wind = np.asarray(env.wind)
    cell_life = np.asarray(p.multicell_cell_life_min) * 60.0
    trailing = stratiform_offset(
        domain.z, env.freezing_km, 0.5 * env.bright_band_dbz, domain.dz_km
    )
    parts, shields, motions = [], [], []
    for slot in range(slots):
        for birth_c, life_c in _lives(
            rng, np.asarray(p.multicell_cluster_life_min) * 60.0, horizon_s, 2400.0
        ):
            v_sys = wind + _u(rng, p.multicell_propagation_ms) * f
            motions.append((float(v_sys[0]), float(v_sys[1])))
            pos0 = _place(rng, domain, birth_c, life_c, v_sys, horizon_s, centres[slot])
            radius_c = rng.uniform(10.0, 18.0)
            centre0 = pos0 - 0.4 * radius_c * f
            shields.append(Shield(
                birth=birth_c + 1200.0, life=life_c - 1200.0,
                x=float(centre0[0]), y=float(centre0[1]),
                u=float(v_sys[0]), v=float(v_sys[1]),
                radius=0.8 * radius_c, aspect=1.6,
                angle=float(np.arctan2(left[1], left[0])),
                profile=trailing + F32(rng.uniform(22.0, 30.0)),
            ))
            span = max(life_c - cell_life[1], 600.0)
            n = int(rng.poisson(_u(rng, p.multicell_births_per_hour) * span / 3600.0))
            tb = np.sort(rng.uniform(birth_c, birth_c + span, n))
            front = rng.uniform(0.3, 0.7, n) * radius_c
            side = rng.normal(0.0, 0.45 * radius_c, n)
            gx = pos0[0] + v_sys[0] * tb / 1000.0 + front * f[0] + side * left[0]
            gy = pos0[1] + v_sys[1] * tb / 1000.0 + front * f[1] + side * left[1]
            # drift toward the cluster's axis (merging), plus some scatter
            drift = -0.12 * side
            u = wind[0] + drift * left[0] + rng.normal(0.0, 1.0, n)
            v = wind[1] + drift * left[1] + rng.normal(0.0, 1.0, n)
            life = _u(rng, cell_life, n)
            cells = CellPopulation(
                birth=tb, life=life, x=gx, y=gy, u=u, v=v,
                peak=_u(rng, p.multicell_peak_dbz, n),
                radius=rng.uniform(3.0, 6.0, n),
                top=_u(rng, p.multicell_top_km, n),
                aspect=rng.uniform(1.0, 1.5, n),
                angle=rng.uniform(0.0, np.pi, n),
                phase0=np.zeros(n),
            )
            parts.append(cells)
            parts.append(_splits(rng, cells, left, p.multicell_split_fraction))
    return CellPopulation.concat(parts), shields, motions


def _splits(rng, parent: CellPopulation, left, fraction: float) -> CellPopulation:
    """Daughters of splitting cells: born mature inside the parent, then diverging."""
    pick = np.flatnonzero(rng.uniform(size=len(parent)) < fraction)
    n = pick.size
    p0 = 0.3
    birth = parent.birth[pick] + p0 * parent.life[pick]
    age = birth - parent.birth[pick]
    x = parent.x[pick] + parent.u[pick] * age / 1000.0
    y = parent.y[pick] + parent.v[pick] * age / 1000.0
    side = np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0) * rng.uniform(5.0, 8.0, n)
    return CellPopulation(
        birth=birth,
        life=parent.life[pick] * rng.uniform(0.8, 1.1, n),
        x=x, y=y,
        u=parent.u[pick] + side * left[0],
        v=parent.v[pick] + side * left[1],
        peak=parent.peak[pick] * rng.uniform(0.85, 1.0, n),
        radius=parent.radius[pick] * 0.9,
        top=parent.top[pick] * 0.95,
        aspect=parent.aspect[pick],
        angle=parent.angle[pick],
        phase0=np.full(n, p0),
    )


def supercells(
    rng: np.random.Generator,
    domain: Domain,
    env: Environment,
    p: SyntheticConfig,
    horizon_s: float,
    centre: np.ndarray,
) -> list[Supercell]:
    """A chain of right-moving supercells crossing ``centre``."""
    f = env.downshear(rng)
    right = np.array([f[1], -f[0]])
    out = []
    lives = _lives(rng, np.asarray(p.supercell_life_min) * 60.0, horizon_s, 1800.0)
    for birth, life in lives:
        motion = np.asarray(env.wind) + _u(rng, p.supercell_deviation_ms) * right
        pos0 = _place(rng, domain, birth, life, motion, horizon_s, centre)
        out.append(Supercell(
            birth=float(birth), life=float(life),
            x=float(pos0[0]), y=float(pos0[1]),
            u=float(motion[0]), v=float(motion[1]),
            forward=(float(f[0]), float(f[1])),
            peak=float(_u(rng, p.supercell_peak_dbz)),
            top=float(_u(rng, p.supercell_top_km)),
            scale=float(rng.uniform(0.85, 1.2)),
            cycle_s=float(rng.uniform(30.0, 50.0) * 60.0),
            cycle_phase=float(rng.uniform()),
        ))
    return out


def build_scene(
    regime: str,
    seeds: np.random.SeedSequence,
    domain: Domain,
    p: SyntheticConfig,
    horizon_s: float,
) -> Scene:
    """Draw the scene of ``regime`` (see the module doc) covering ``[0, horizon_s]``."""
    if regime not in (*REGIMES, MIXED):
        raise ValueError(
            f"unknown regime {regime!r}: choose one of {', '.join((*REGIMES, MIXED))}"
        )
    env_rng, strat_rng, cell_rng, storm_rng = (
        np.random.default_rng(s) for s in seeds.spawn(4)
    )
    env = draw_environment(env_rng, p, supercell=regime in ("supercell", MIXED))
    scene = Scene(regime, env)
    scene.meta = {
        "regime": regime,
        "wind_ms": env.wind,
        "shear_ms_per_km": env.shear,
        "freezing_level_km": env.freezing_km,
    }
    wind = np.asarray(env.wind)
    unit = wind / max(np.hypot(*wind), 1e-6)
    left = np.array([-unit[1], unit[0]]) * 0.35 * domain.half_km
    if regime in ("advection", MIXED):
        factor = 0.5 if regime == MIXED else 1.0
        scene.stratiform = _stratiform(strat_rng, domain, env, p, factor)
        scene.cells = scattered_cells(
            cell_rng, domain, env, horizon_s,
            _u(cell_rng, p.embedded_cells_per_10k_km2) * factor,
            p.embedded_peak_dbz, p.embedded_life_min, (6.0, 9.0),
        )
    if regime in ("multicell", MIXED):
        if regime == MIXED:
            slots, centres = 1, [left]
        else:
            density = _u(storm_rng, p.multicell_clusters_per_100k_km2)
            slots = max(1, int(round(density * domain.area_km2 / 1e5)))
            centres = [
                storm_rng.uniform(-0.35, 0.35, 2) * domain.half_km if k else np.zeros(2)
                for k in range(slots)
            ]
        cells, scene.shields, motions = multicell_clusters(
            storm_rng, domain, env, p, horizon_s, slots, centres
        )
        scene.cells = CellPopulation.concat([scene.cells, cells])
        scene.meta["system_motion_ms"] = motions[0]
    if regime in ("supercell", MIXED):
        centre = -left if regime == MIXED else np.zeros(2)
        scene.supercells = supercells(storm_rng, domain, env, p, horizon_s, centre)
        scene.meta["storm_motion_ms"] = (scene.supercells[0].u, scene.supercells[0].v)
        if regime == "supercell":
            scene.cells = scattered_cells(
                cell_rng, domain, env, horizon_s, 0.5, (30.0, 42.0), (20.0, 40.0),
                (6.0, 9.0), radius_km=(2.5, 4.0),
            )
    (shape_seed,) = seeds.spawn(1)  # a stream of its own: the rest stays as drawn
    scene.cells.shaped(
        np.random.default_rng(shape_seed), p.cell_growth_end, p.cell_decay_start
    )
    return scene
