"""The supercell: a long-lived rotating storm drawn from its classic radar picture.

Contract
--------
:class:`Supercell` moves at its own velocity (the regime sets it right of the mean
wind, as a right-moving supercell does) and lives ``life`` seconds, organising over
the first 25 minutes and dissipating over the last 25. In the storm's frame, with
``f`` the downshear direction and ``l`` its left:

- the updraft sits at the storm position; at low levels a weak-echo region (an
  echo-free notch, bounded by echo at mid levels) marks it;
- the precipitation core lies forward-left of the updraft near the ground and leans
  over the updraft aloft (the echo overhang), its maximum aloft (about 0.4 of the
  echo top) and above 50 dBZ up to 9-10 km;
- a hook echo wraps cyclonically around the updraft's rear at low levels (below
  3.5 km), its sweep pulsing with a mesocyclone cycle of 30-50 minutes;
- a forward-flank precipitation region extends downshear;
- an anvil at the upper levels (above 0.6 of the echo top) overhangs 60 km or more
  downshear, where nothing is below it.

Every part adds its footprint to the motion field with the storm's velocity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nowcast.synthetic.cells import (
    MotionSum,
    blob,
    convective_profile,
    paint,
    smoothstep,
)
from nowcast.synthetic.domain import Domain

F32 = np.float32
RAMP_S = 1500.0


@dataclass(frozen=True)
class Supercell:
    """One supercell; positions in km at ``t = 0``, velocities in m/s."""

    birth: float
    life: float
    x: float
    y: float
    u: float
    v: float
    forward: tuple[float, float]
    peak: float
    top: float
    scale: float
    cycle_s: float
    cycle_phase: float

    def position(self, t: float) -> tuple[float, float]:
        return self.x + self.u * t / 1000.0, self.y + self.v * t / 1000.0

    def strength(self, t: float) -> float:
        age = t - self.birth
        fade = 1.0 - smoothstep((age - self.life) / RAMP_S + 1.0)
        return float(smoothstep(age / RAMP_S) * fade)

    def render(
        self, volume: np.ndarray, motion: MotionSum, domain: Domain, t: float,
        tilt_km: tuple[float, float],
    ) -> None:
        """Paint the storm at ``t`` into ``volume`` (``(z, y, x)`` dBZ)."""
        e = self.strength(t)
        if e <= 0:
            return
        ux, uy = self.position(t)
        reach = self.scale * 110.0
        if abs(ux) - reach > domain.half_km or abs(uy) - reach > domain.half_km:
            return
        fx, fy = self.forward
        lx, ly = -fy, fx
        s = self.scale
        z = domain.z
        cyc = float(np.sin(2.0 * np.pi * (t / self.cycle_s + self.cycle_phase)))
        velocity = (self.u, self.v)
        angle = float(np.arctan2(fy, fx))
        tx, ty = tilt_km

        def add(out) -> None:
            if out is not None:
                paint(volume, *out)
                motion.add(*out, velocity)

        # forward-flank precipitation and the anvil (painted first: the core wins)
        add(blob(
            domain,
            ux + s * (15 * fx + 7 * lx) + 0.5 * tx * z,
            uy + s * (15 * fy + 7 * ly) + 0.5 * ty * z,
            e * convective_profile(z, 42.0, 2.0, 0.7 * self.top),
            np.full(z.shape, 7.0 * s),
            aspect=2.2, angle=angle, falloff=30.0,
        ))
        base = 0.6 * self.top
        mid, half = 0.5 * (base + self.top) + 0.5, 0.5 * (self.top - base) + 1.0
        above = np.maximum(z - base, 0.0)
        anvil_peak = e * 24.0 * (1.0 - ((z - mid) / half) ** 2)
        anvil_peak[z < base] = 0.0
        length = s * (35.0 + 3.0 * above)
        add(blob(
            domain,
            ux + (s * 30.0 + 2.0 * above) * fx,
            uy + (s * 30.0 + 2.0 * above) * fy,
            anvil_peak,
            length / 2.5,
            aspect=2.5, angle=angle, falloff=24.0,
        ))
        # the core, leaning over the updraft aloft, with the weak-echo notch
        over = 0.85 * np.clip((z - 1.5) / 4.0, 0.0, 1.0)
        lean = 0.25 * z
        cx = ux + s * (4 * fx + 4 * lx) * (1 - over) + tx * lean
        cy = uy + s * (4 * fy + 4 * ly) * (1 - over) + ty * lean
        prof = convective_profile(
            z, self.peak + 2.0 * cyc, 0.38 * self.top, self.top, 1.0
        )
        radius = s * 7.0 * (1.0 + 0.15 * np.exp(-(((z - 6.0) / 3.0) ** 2)))
        core = blob(
            domain, cx, cy, e * prof, radius, aspect=1.3, angle=angle, falloff=30.0
        )
        if core is not None:
            box, values = core
            zs, ys, xs = box
            depth = (45.0 * np.clip((7.5 - z[zs]) / 6.0, 0.0, 1.0)).astype(F32)
            wx = (domain.x[xs][None, None, :] - (ux + 0.1 * tx * z[zs])[:, None, None])
            wy = (domain.y[ys][None, :, None] - (uy + 0.1 * ty * z[zs])[:, None, None])
            notch = np.exp(-(wx * wx + wy * wy) / F32((3.2 * s) ** 2))
            values -= depth[:, None, None] * notch
            add((box, values))
        # the hook, wrapping cyclonically around the updraft's rear
        theta = np.radians(np.linspace(95.0, 250.0 + 25.0 * cyc, 12))
        rho = s * np.linspace(6.5, 2.3, theta.size)
        hook_peak = e * np.linspace(48.0, 36.0, theta.size)
        hook_radius = s * np.linspace(2.4, 1.5, theta.size)
        shape = np.clip(1.0 - (z / 3.5) ** 2, -1.0, 1.0)
        for th, r, pk, rad in zip(theta, rho, hook_peak, hook_radius):
            dx = r * (np.cos(th) * fx + np.sin(th) * lx)
            dy = r * (np.cos(th) * fy + np.sin(th) * ly)
            add(blob(
                domain,
                np.full(z.shape, ux + dx),
                np.full(z.shape, uy + dy),
                pk * shape,
                np.full(z.shape, rad),
                falloff=25.0,
            ))
