"""Analytic 3D echo shapes: blobs, vertical profiles and convective cells.

Contract
--------
- Shapes are written in dBZ. A blob is an ellipse at each level whose reflectivity
  falls off as ``peak - falloff * r**2`` (a Gaussian in linear Z), with a centre,
  peak and radius of its own at each level (so cores can lean and anvils spread).
  Values at or below 0 dBZ are no echo.
- :func:`blob` evaluates one blob in its bounding box only and returns the box and
  its values; :func:`paint` composites them into a volume by maximum, so
  overlapping echoes merge as a radar would show them.
- :func:`convective_profile` and :func:`stratiform_offset` are the vertical
  structures: tall cores whose maximum sits aloft while a cell grows and sinks
  while it decays; stratiform rain with a bright band below the freezing level and
  reflectivity falling off in the snow above.
- :class:`CellPopulation` holds many convective cells (struct of arrays): birth,
  lifetime, path, size, strength. :meth:`CellPopulation.render` paints those alive
  at ``t`` into a volume and adds their footprints to a :class:`MotionSum`; cells
  grow, peak and decay over their lifetime (first echo aloft, then the core falls
  out and spreads), each over the fractions of its life that its ``grow_end`` and
  ``decay_start`` say.
- :class:`MotionSum` is how the true motion field is made: every object adds its
  column-maximum footprint, as weights, with its own velocity; the background moves
  with the steering wind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nowcast.synthetic.domain import Domain

F32 = np.float32
#: reflectivity at the echo top of a convective core (dBZ)
TOP_DBZ = 15.0


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def blob(
    domain: Domain,
    cx: np.ndarray,
    cy: np.ndarray,
    peak: np.ndarray,
    radius: np.ndarray,
    *,
    aspect: float = 1.0,
    angle: float = 0.0,
    falloff: float = 25.0,
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """One ellipsoidal echo, evaluated in its bounding box.

    Parameters
    ----------
    domain
        The grid.
    cx, cy, peak, radius
        Per level (``domain.nz`` values each): centre in km, peak dBZ, radius in km
        (across the ellipse's minor axis). Levels with ``peak <= 0`` are empty.
    aspect
        Major over minor axis (>= 1).
    angle
        Direction of the major axis, radians counter-clockwise from +x.
    falloff
        dBZ lost at one radius from the centre.

    Returns
    -------
    ((zs, ys, xs), values) or None
        Slices of the volume and the ``float32`` dBZ values there; ``None`` when the
        blob has no echo on the grid.
    """
    live = np.flatnonzero(peak > 0)
    if live.size == 0:
        return None
    k0, k1 = int(live[0]), int(live[-1]) + 1
    cx, cy = cx[k0:k1], cy[k0:k1]
    pk = np.maximum(peak[k0:k1], 0.0)
    rad = np.maximum(radius[k0:k1], 1e-3)
    reach = rad * max(aspect, 1.0) * np.sqrt(pk / falloff)
    i0, i1 = domain.index_range(float((cx - reach).min()), float((cx + reach).max()))
    j0, j1 = domain.index_range(float((cy - reach).min()), float((cy + reach).max()))
    if i1 <= i0 or j1 <= j0:
        return None
    xs = (domain.x0 + domain.dx_km * np.arange(i0, i1)).astype(F32)
    ys = (domain.x0 + domain.dx_km * np.arange(j0, j1)).astype(F32)
    c, s = np.cos(angle), np.sin(angle)
    scale = np.sqrt(falloff) / rad
    ax = (scale * (c / aspect)).astype(F32)[:, None, None]
    ay = (scale * (s / aspect)).astype(F32)[:, None, None]
    bx = (scale * s).astype(F32)[:, None, None]
    by = (scale * c).astype(F32)[:, None, None]
    dx = xs[None, None, :] - cx.astype(F32)[:, None, None]
    dy = ys[None, :, None] - cy.astype(F32)[:, None, None]
    u = dx * ax + dy * ay
    w = dy * by - dx * bx
    u *= u
    w *= w
    u += w
    values = pk.astype(F32)[:, None, None] - u
    return (slice(k0, k1), slice(j0, j1), slice(i0, i1)), values


def paint(volume: np.ndarray, box, values: np.ndarray) -> None:
    """Composite ``values`` into ``volume[box]`` by maximum (in place)."""
    view = volume[box]
    np.maximum(view, values, out=view)


@dataclass
class MotionSum:
    """Weighted sum of object velocities: the true advecting motion field."""

    background: tuple[float, float]
    shape: tuple[int, int]
    weight: np.ndarray = field(init=False)
    u: np.ndarray = field(init=False)
    v: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.weight = np.ones(self.shape, F32)
        self.u = np.full(self.shape, self.background[0], F32)
        self.v = np.full(self.shape, self.background[1], F32)

    def add(self, box, values: np.ndarray, velocity: tuple[float, float]) -> None:
        """Add an object's footprint (``values``: its dBZ in ``box``)."""
        _, ys, xs = box
        w = np.maximum(values.max(axis=0), 0.0) * F32(0.1)
        w *= w
        self.weight[ys, xs] += w
        self.u[ys, xs] += w * F32(velocity[0])
        self.v[ys, xs] += w * F32(velocity[1])

    def field(self) -> np.ndarray:
        """``(2, y, x)`` motion in m/s, x then y component."""
        return np.stack([self.u / self.weight, self.v / self.weight]).astype(F32)


def convective_profile(
    z: np.ndarray, peak: float, core_km: float, top_km: float, below_db_km: float = 0.0
) -> np.ndarray:
    """Core reflectivity at heights ``z`` (km) of a mature convective cell.

    ``peak`` at ``core_km``, falling quadratically to :data:`TOP_DBZ` at ``top_km``
    and on above it; below the core it falls by ``below_db_km`` per km (a growing
    cell whose rain has not reached the ground yet).
    """
    depth = max(top_km - core_km, 0.5)
    q = np.maximum(z - core_km, 0.0) / depth
    below = np.maximum(core_km - z, 0.0) * below_db_km
    return (peak - (peak - TOP_DBZ) * q * q - below).astype(F32)


def stratiform_offset(
    z: np.ndarray, freezing_km: float, bright_band_dbz: float, dz_km: float
) -> np.ndarray:
    """dBZ added to surface stratiform rain at heights ``z`` (km).

    0 in the rain, a bright band peaking ``bright_band_dbz`` a quarter km below
    the freezing level (at least half a level thick, as a radar averages over a
    level), then -6 dBZ in the snow and a further -4 dBZ per km above.
    """
    width = max(0.3, 0.5 * dz_km)
    band = bright_band_dbz * np.exp(-(((z - (freezing_km - 0.25)) / width) ** 2))
    above = np.maximum(z - freezing_km, 0.0)
    snow = 6.0 * smoothstep(above / 0.5) + 4.0 * above
    return (band - snow).astype(F32)


@dataclass
class CellPopulation:
    """Convective cells, one entry a cell (struct of arrays, all in km, s, m/s).

    ``x``, ``y`` are positions at birth; ``phase0`` is the life-cycle phase a cell
    is born at (0 for a new cell, about 0.3 for the daughter of a split, which
    appears as part of a mature parent). ``grow_end`` and ``decay_start`` shape
    each cell's life cycle: it grows up to phase ``grow_end``, holds, and decays
    from ``decay_start`` to the end of its life (``None``: 0.3 and 0.6 for all).
    """

    birth: np.ndarray
    life: np.ndarray
    x: np.ndarray
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    peak: np.ndarray
    radius: np.ndarray
    top: np.ndarray
    aspect: np.ndarray
    angle: np.ndarray
    phase0: np.ndarray
    grow_end: np.ndarray | None = None
    decay_start: np.ndarray | None = None

    FIELDS = (
        "birth", "life", "x", "y", "u", "v", "peak", "radius", "top", "aspect",
        "angle", "phase0", "grow_end", "decay_start",
    )

    def __post_init__(self) -> None:
        n = np.shape(self.birth)[0]
        if self.grow_end is None:
            self.grow_end = np.full(n, 0.3)
        if self.decay_start is None:
            self.decay_start = np.full(n, 0.6)

    def shaped(self, rng: np.random.Generator, grow_end, decay_start) -> None:
        """Draw each cell's ``grow_end`` and ``decay_start`` from the ranges
        (``[low, high]``); a daughter born mature (``phase0 > 0``) ends its growth
        by the phase it is born at, as before."""
        n = len(self)
        self.grow_end = np.minimum(
            rng.uniform(grow_end[0], grow_end[1], n),
            np.where(self.phase0 > 0, self.phase0, 1.0),
        )
        self.decay_start = rng.uniform(decay_start[0], decay_start[1], n)

    @classmethod
    def empty(cls) -> "CellPopulation":
        return cls(*[np.zeros(0) for _ in cls.FIELDS])

    @classmethod
    def concat(cls, parts: list["CellPopulation"]) -> "CellPopulation":
        parts = [p for p in parts if len(p)] or [cls.empty()]
        return cls(
            *[np.concatenate([getattr(p, f) for p in parts]) for f in cls.FIELDS]
        )

    def __len__(self) -> int:
        return int(self.birth.size)

    def positions(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Centres (km) at time ``t`` (s), alive or not."""
        age = t - self.birth
        return self.x + self.u * age / 1000.0, self.y + self.v * age / 1000.0

    def render(
        self,
        volume: np.ndarray,
        motion: MotionSum,
        domain: Domain,
        t: float,
        tilt_km: tuple[float, float],
    ) -> None:
        """Paint the cells alive at ``t`` into ``volume`` (``(z, y, x)`` dBZ).

        ``tilt_km`` is the downshear lean of a core: km a km of height.
        """
        if not len(self):
            return
        phase = self.phase0 + (t - self.birth) / self.life * (1.0 - self.phase0)
        cx, cy = self.positions(t)
        reach = self.radius * 2.4 * self.aspect + np.hypot(*tilt_km) * self.top
        half = domain.half_km
        alive = (
            (phase > 0)
            & (phase < 1)
            & (np.abs(cx) - reach < half)
            & (np.abs(cy) - reach < half)
        )
        z = domain.z
        for n in np.flatnonzero(alive):
            p = float(phase[n])
            g, d = float(self.grow_end[n]), float(self.decay_start[n])
            fade = smoothstep((p - d) / (1.0 - d))
            strength = float(smoothstep(p / g) * (1.0 - fade))
            top = self.top[n] * np.interp(p, [0, g, d, 1], [0.5, 1.0, 1.0, 0.65])
            core = top * np.interp(p, [0, g, d, 1], [0.55, 0.3, 0.25, 0.0])
            below = np.interp(p, [0, g, 1], [12.0, 2.0, 0.0])
            prof = strength * convective_profile(z, self.peak[n], core, top, below)
            rad = self.radius[n] * np.interp(p, [0, g, d, 1], [0.6, 1, 1.1, 1.4])
            radius = rad * (1.0 - 0.3 * np.clip(z / top, 0, 1) ** 2)
            out = blob(
                domain,
                cx[n] + tilt_km[0] * z,
                cy[n] + tilt_km[1] * z,
                prof,
                radius,
                aspect=float(self.aspect[n]),
                angle=float(self.angle[n]),
            )
            if out is not None:
                paint(volume, *out)
                motion.add(*out, (self.u[n], self.v[n]))


@dataclass(frozen=True)
class Shield:
    """A broad area of lighter rain that travels with a storm system.

    The trailing stratiform rain of a multicell cluster: an ellipse ``radius`` km
    across its minor axis whose centre follows ``(x, y) + (u, v) * t``, with the
    dBZ ``profile`` at its centre at each level; it builds up over the first 30
    minutes of ``life`` and fades over the last 30.
    """

    birth: float
    life: float
    x: float
    y: float
    u: float
    v: float
    radius: float
    aspect: float
    angle: float
    profile: np.ndarray

    RAMP_S = 1800.0

    def render(
        self, volume: np.ndarray, motion: MotionSum, domain: Domain, t: float
    ) -> None:
        age = t - self.birth
        e = float(
            smoothstep(age / self.RAMP_S)
            * (1 - smoothstep((age - self.life) / self.RAMP_S + 1))
        )
        if e <= 0:
            return
        cx = self.x + self.u * t / 1000.0
        cy = self.y + self.v * t / 1000.0
        full = np.ones_like(self.profile)
        out = blob(
            domain, cx * full, cy * full, e * self.profile, self.radius * full,
            aspect=self.aspect, angle=self.angle, falloff=20.0,
        )
        if out is not None:
            paint(volume, *out)
            motion.add(*out, (self.u, self.v))
