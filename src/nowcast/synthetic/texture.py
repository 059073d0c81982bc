"""Random fields that drift and evolve: stratiform rain patterns and radar texture.

Contract
--------
- :class:`SpectralField` is a Gaussian random field on a periodic ``n x n`` grid
  made from a seeded Fourier spectrum (amplitude by wavenumber, random phases).
  :meth:`SpectralField.at` returns it at time ``t``: translated by
  ``velocity * t`` exactly (a phase ramp, so sub-pixel motion is exact) and evolved
  by letting every mode's phase drift at a random rate whose scale is
  ``1 / lifetime(k)``: large features persist, small ones change quickly. Values
  have mean 0 and standard deviation about 1.
- :func:`power_law`, :func:`band_pass` and :func:`scale_lifetime` build the
  spectra and lifetimes used by the regimes.
- :class:`Upsampler` brings a coarse periodic field onto the fine grid with
  separable cubic (Catmull-Rom) interpolation as two small matrix products, so a
  large-scale pattern can be drawn at a few km and shown at 1 km cheaply.
- Everything is float32 and single-threaded (``scipy.fft`` with ``workers=1``),
  deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft

F32 = np.float32


def power_law(beta: float, largest_km: float, smallest_km: float) -> Callable:
    """Amplitude ``~ k**(-beta/2)`` between two scales (cycles/km in, amplitude out)."""

    def amplitude(k: np.ndarray) -> np.ndarray:
        k0 = 1.0 / largest_km
        cut = np.exp(-((k * smallest_km) ** 2))
        return (k * k + k0 * k0) ** (-beta / 4.0) * cut

    return amplitude


def band_pass(largest_km: float, smallest_km: float) -> Callable:
    """A flat-ish band of scales: radar texture."""

    def amplitude(k: np.ndarray) -> np.ndarray:
        low = 1.0 - np.exp(-((k * largest_km) ** 2))
        high = np.exp(-((k * smallest_km) ** 2))
        return low * high / np.sqrt(np.maximum(k, 1e-6))

    return amplitude


def scale_lifetime(lifetime_50km_s: float, floor_s: float = 300.0) -> Callable:
    """Lifetime of a feature of wavelength ``1/k`` km: ``~ wavelength**0.7``."""

    def lifetime(k: np.ndarray) -> np.ndarray:
        wavelength = 1.0 / np.maximum(k, 1e-6)
        return np.maximum(lifetime_50km_s * (wavelength / 50.0) ** 0.7, floor_s)

    return lifetime


class SpectralField:
    """``count`` independent random fields on a periodic ``n x n`` grid.

    Parameters
    ----------
    rng
        Seeded generator (consumed here, once).
    n
        Grid points each way.
    spacing_km
        Grid spacing.
    amplitude
        Spectral amplitude as a function of wavenumber in cycles/km.
    lifetime
        Decorrelation time in s as a function of wavenumber.
    velocity_ms
        Drift ``(u, v)`` in m/s along +x, +y.
    count
        Number of independent fields.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        n: int,
        spacing_km: float,
        amplitude: Callable,
        lifetime: Callable,
        velocity_ms: tuple[float, float],
        count: int = 1,
    ) -> None:
        self.n = int(n)
        ky = np.fft.fftfreq(self.n, d=spacing_km)
        kx = np.fft.rfftfreq(self.n, d=spacing_km)
        k = np.hypot(ky[:, None], kx[None, :])
        amp = amplitude(k)
        amp[0, 0] = 0.0
        shape = (count, *k.shape)
        self._phase = rng.uniform(0.0, 2.0 * np.pi, shape)
        evolve = rng.standard_normal(shape) / lifetime(k)
        u, v = velocity_ms
        drift = -2.0 * np.pi * (kx[None, :] * u + ky[:, None] * v)
        self._rate = evolve + drift / 1000.0
        self._amp = amp.astype(F32)
        first = self._raw(0.0)
        std = first.reshape(count, -1).std(axis=1)
        self._scale = (1.0 / np.maximum(std, 1e-12)).astype(F32)[:, None, None]

    def _raw(self, t: float) -> np.ndarray:
        phase = np.mod(self._phase + self._rate * t, 2.0 * np.pi).astype(F32)
        spec = np.empty(phase.shape, np.complex64)
        spec.real = np.cos(phase) * self._amp
        spec.imag = np.sin(phase) * self._amp
        return scipy.fft.irfft2(spec, s=(self.n, self.n), workers=1)

    def at(self, t: float) -> np.ndarray:
        """``(count, n, n)`` float32 fields at time ``t`` (s)."""
        out = self._raw(t)
        out *= self._scale
        return out


def _catmull_rom(d: np.ndarray) -> np.ndarray:
    d = np.abs(d)
    return np.where(
        d < 1,
        1.5 * d**3 - 2.5 * d**2 + 1,
        np.where(d < 2, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2, 0.0),
    )


class Upsampler:
    """Coarse periodic field (``nodes x nodes``) -> fine ``n x n`` view.

    Fine pixel ``i`` sits at coarse position ``offset + i / factor``; the view uses
    nodes ``[0, used)`` only, so the coarse grid should have a margin around it.
    """

    OFFSET = 2.0

    def __init__(self, n: int, factor: int, nodes: int) -> None:
        pos = self.OFFSET + np.arange(n) / factor
        base = np.floor(pos).astype(int)
        self.used = int(base.max()) + 3
        if self.used > nodes:
            raise ValueError(f"coarse grid of {nodes} nodes too small for {n} pixels")
        weights = np.zeros((n, self.used))
        for j in range(-1, 3):
            cols = base + j
            weights[np.arange(n), cols] += _catmull_rom(pos - cols)
        self._w = weights.astype(F32)
        self._wt = np.ascontiguousarray(self._w.T)

    @staticmethod
    def nodes_for(n: int, factor: int) -> int:
        """A coarse grid size with the view and an equal margin (even, >= 8)."""
        return int(2 * np.ceil(n / factor) + 8)

    def __call__(self, coarse: np.ndarray) -> np.ndarray:
        """``(nodes, nodes)`` -> ``(n, n)`` float32."""
        part = coarse[: self.used, : self.used]
        return (self._w @ part) @ self._wt
