"""pysteps' optical-flow nowcasts behind the forecaster interface.

Four forecasters, the peers radar centres run from pysteps today:

- :class:`Extrapolation` (``"extrapolation"``): Lucas-Kanade motion from the
  column-maximum composite, semi-Lagrangian extrapolation of every level with it.
- :class:`SProg` (``"sprog"``): S-PROG (cascade decomposition, scale-dependent
  AR(p) decay of the Lagrangian field).
- :class:`Anvil` (``"anvil"``): ANVIL (an ARI(p,1) model on the cascade, made for
  convection).
- :class:`Linda` (``"linda"``): LINDA, deterministic (Lagrangian integro-difference
  model with autoregression, localised about blob features: growth, decay and
  smoothing that depend on place and scale).

Contract (on top of :mod:`nowcast.forecasters.interface`)
------------------------------------------------------
- Input NaN (no coverage) is filled with the floor (no echo) before motion and
  advection; values below the floor are clipped to it. The output is NaN exactly
  where the newest frame had no coverage (the radar's coverage does not move);
  NaN that pysteps leaves where echoes flow in from outside the grid is the floor.
- Motion: ``pysteps.motion.dense_lucaskanade`` on the column maximum of the newest
  ``motion_frames`` frames, in pixels a frame step; returned as ``motion``
  ``(n_leads, 2, y, x)`` in m/s (x then y, along the grid axes, ``dx_m`` for both).
  The same field serves every level and every lead.
- Extrapolation advects dBZ directly (bilinear, as pysteps' ``semilagrangian``
  with ``interp_order=1``): the displacement of each lead is computed once by
  pysteps and applied to every level.
- S-PROG works on dB of Marshall-Palmer rain rate (``Z = 200 R^1.6``), as pysteps'
  examples do: rain rate below that of ``rain_threshold_dbz`` is no rain, and
  comes back as the floor. It uses the newest ``ar_order + 1`` frames. Where
  pysteps cannot fit its AR model (perfectly steady motion: "nonstationary AR(p)";
  too little rain on a level: NaN correlations) the level is extrapolated instead,
  S-PROG's limit (``info["sprog_extrapolated_levels"]`` lists them).
- ANVIL works on linear rain rate and uses exactly the newest ``ar_order + 2``
  frames. With ``ar_order = 2`` and perfectly steady motion (or a window with a
  perfect lag-1 correlation) its ARI(2) estimate divides by zero and pysteps returns
  NaN inside rain; a level where that happens is run again with ``ar_order = 1``,
  which fills those pixels (``info["anvil_ar1_levels"]`` lists the levels).
- LINDA runs deterministically (``add_perturbations=False``) on linear
  Marshall-Palmer rain rate of the newest ``ari_order + 2`` frames, with
  ``feature_method="blob"`` (scikit-image's Laplacian-of-Gaussian detector), the
  composite's motion, ``kmperpixel`` from ``dx_m`` and the frame step; a level
  where it finds no feature, or fails, is extrapolated instead
  (``info["linda_extrapolated_levels"]``). It is the slowest peer by far (tens of
  seconds a level at 250 x 250 on two CPU cores): on an 18-level volume, each
  rainy level costs one such run.
- S-PROG, ANVIL and LINDA are 2D methods: on a volume they run on each level on its own,
  with the composite's motion. Levels without rain in the frames used are skipped
  (the floor, exactly what pysteps would return). The cost grows with the number
  of rainy levels: see ``bench/check_extrapolation.py`` for timings.
- pysteps is an optional extra, imported on first use by :func:`import_pysteps`:
  its import prints to stdout and silences RuntimeWarnings process-wide, so both
  are contained; its calls print too, and run with stdout redirected (a process-
  wide redirection: keep pysteps calls off threads that print).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from nowcast.forecasters.interface import (
    ForecastResult,
    Forecaster,
    SequenceContext,
    check_input,
    step_seconds,
)
from nowcast.errors import ForecasterError

if TYPE_CHECKING:
    from nowcast.config import Settings

#: Marshall-Palmer ``Z = a R^b`` (Z in mm^6 m^-3, R in mm/h).
MP_A = 200.0
MP_B = 1.6

_INSTALL_HINT = "install the extra: pip install 'nowcast[pysteps]'"
_PYSTEPS: SimpleNamespace | None = None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow what pysteps prints and the RuntimeWarnings of its NaN arithmetic."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def import_pysteps() -> SimpleNamespace:
    """Import the parts of pysteps used here, without its side effects.

    The import's output to stdout is discarded and the process' ``warnings``
    filters are restored afterwards (pysteps' modules add an "ignore
    RuntimeWarning" filter when imported).

    Returns
    -------
    SimpleNamespace
        ``dense_lucaskanade``, ``extrapolate`` (semi-Lagrangian), ``sprog``,
        ``anvil``, ``linda`` (the ``forecast`` functions) and ``dB_transform``.

    Raises
    ------
    ForecasterError
        When pysteps or OpenCV (needed by Lucas-Kanade) is not installed.
    """
    global _PYSTEPS
    if _PYSTEPS is not None:
        return _PYSTEPS
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            lk = importlib.import_module("pysteps.motion.lucaskanade")
            sl = importlib.import_module("pysteps.extrapolation.semilagrangian")
            sprog = importlib.import_module("pysteps.nowcasts.sprog")
            anvil = importlib.import_module("pysteps.nowcasts.anvil")
            linda = importlib.import_module("pysteps.nowcasts.linda")
            transformation = importlib.import_module(
                "pysteps.utils.transformation"
            )
        except ImportError as exc:
            raise ForecasterError(
                f"pysteps is needed for the extrapolation, sprog, anvil and linda "
                f"forecasters but cannot be imported ({exc}); {_INSTALL_HINT}"
            ) from None
    if importlib.util.find_spec("cv2") is None:
        raise ForecasterError(
            "OpenCV (cv2) is needed for pysteps' Lucas-Kanade motion but is not "
            f"installed; {_INSTALL_HINT}"
        )
    _PYSTEPS = SimpleNamespace(
        dense_lucaskanade=lk.dense_lucaskanade,
        extrapolate=sl.extrapolate,
        sprog=sprog.forecast,
        anvil=anvil.forecast,
        linda=linda.forecast,
        dB_transform=transformation.dB_transform,
    )
    return _PYSTEPS


def dbz_to_rainrate(dbz: np.ndarray) -> np.ndarray:
    """Marshall-Palmer rain rate (mm/h) from dBZ (float64)."""
    z = np.power(10.0, np.asarray(dbz, dtype=np.float64) / 10.0)
    return np.power(z / MP_A, 1.0 / MP_B)


def rainrate_to_dbz(rate: np.ndarray) -> np.ndarray:
    """dBZ from Marshall-Palmer rain rate; 0 mm/h gives ``-inf``."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(MP_A * np.power(np.asarray(rate, np.float64), MP_B))


def lucas_kanade_motion(composite: np.ndarray, floor: float) -> np.ndarray:
    """pysteps' dense Lucas-Kanade motion ``(2, y, x)`` in pixels a frame step.

    ``composite`` is ``(t, y, x)``, finite, oldest first. A sequence without echo
    has no motion (zeros).
    """
    ps = import_pysteps()
    if composite.shape[0] < 2:
        raise ForecasterError("Lucas-Kanade motion needs at least two frames")
    if not np.any(composite > floor):
        return np.zeros((2, *composite.shape[1:]), dtype=np.float64)
    with _quiet():
        velocity = ps.dense_lucaskanade(composite.astype(np.float64), verbose=False)
    return np.nan_to_num(np.asarray(velocity, dtype=np.float64))


def lead_displacements(velocity: np.ndarray, timesteps: Sequence[float]) -> np.ndarray:
    """Backward displacement ``(n_leads, 2, y, x)`` of each lead (pixels).

    pysteps' semi-Lagrangian scheme (one midpoint iteration a step), chained lead
    by lead with ``displacement_prev``, exactly as its ``extrapolate`` does.
    """
    ps = import_pysteps()
    out = []
    displacement = None
    previous = 0.0
    with _quiet():
        for step in timesteps:
            _, displacement = ps.extrapolate(
                None, velocity, [step - previous], return_displacement=True,
                displacement_prev=displacement,
            )
            out.append(displacement.copy())
            previous = step
    return np.stack(out)


def warp(field: np.ndarray, displacement: np.ndarray, outval: float) -> np.ndarray:
    """Bilinear backward warp of ``(..., y, x)`` fields by one displacement.

    The interpolation pysteps' ``extrapolate`` applies (``interp_order=1``): a
    point that comes from outside the grid gets ``outval``.
    """
    from scipy.ndimage import map_coordinates

    ny, nx = field.shape[-2:]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    coords = np.stack([yy + displacement[1], xx + displacement[0]])
    flat = field.reshape(-1, ny, nx)
    out = np.empty(flat.shape, dtype=np.float64)
    for i, level in enumerate(flat):
        out[i] = map_coordinates(
            level.astype(np.float64), coords, order=1, mode="constant",
            cval=outval, prefilter=False,
        )
    return out.reshape(field.shape)


class _PystepsForecaster(Forecaster):
    """What the four share: input filling, motion, output clean-up, settings."""

    def __init__(
        self,
        *,
        ar_order: int = 2,
        n_cascade_levels: int = 6,
        rain_threshold_dbz: float = 10.0,
        motion_frames: int = 3,
        dbz_floor: float = 0.0,
    ) -> None:
        if ar_order < 1:
            raise ForecasterError(f"ar_order must be >= 1, got {ar_order}")
        if motion_frames < 2:
            raise ForecasterError(f"motion_frames must be >= 2, got {motion_frames}")
        self.ar_order = int(ar_order)
        self.n_cascade_levels = int(n_cascade_levels)
        self.rain_threshold_dbz = float(rain_threshold_dbz)
        self.motion_frames = int(motion_frames)
        self.dbz_floor = float(dbz_floor)

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, **kwargs: Any
    ) -> "Forecaster":
        """Parameters from the settings (:meth:`_settings_params`), then ``kwargs``."""
        params = cls._settings_params(settings) if settings is not None else {}
        params.update(kwargs)
        return cls(**params)

    @classmethod
    def _settings_params(cls, settings: Settings) -> dict[str, Any]:
        """``[baselines.extrapolation]`` and ``radar.dbz_floor``."""
        ex = settings.baselines.extrapolation
        return {
            "ar_order": ex.ar_order,
            "n_cascade_levels": ex.n_cascade_levels,
            "rain_threshold_dbz": ex.rain_threshold_dbz,
            "motion_frames": ex.motion_frames,
            "dbz_floor": settings.radar.dbz_floor,
        }

    def forecast(
        self,
        frames: np.ndarray,
        times: Sequence[datetime],
        n_leads: int,
        *,
        dx_m: float,
        interval_s: float | None = None,
        context: SequenceContext | None = None,
    ) -> ForecastResult:
        check_input(frames, times, n_leads)
        if frames.shape[0] < 2:
            raise ForecasterError(f"{self.name} needs at least two frames for motion")
        import_pysteps()
        floor = self.dbz_floor
        frames = np.asarray(frames, dtype=np.float32)
        covered = np.isfinite(frames[-1])
        filled = np.where(np.isfinite(frames), np.maximum(frames, floor), floor)
        frame_step = step_seconds(times, None)
        lead_step = step_seconds(times, interval_s)
        scale = lead_step / frame_step
        timesteps = [scale * k for k in range(1, n_leads + 1)]

        started = time.perf_counter()
        composite = filled[-self.motion_frames :].max(axis=1)
        velocity = lucas_kanade_motion(composite, floor)
        motion_s = time.perf_counter() - started
        info: dict[str, Any] = {}
        dbz = self._run(filled, velocity, timesteps, info,
                        dx_m=float(dx_m), frame_step_s=frame_step)
        dbz = np.where(np.isfinite(dbz), np.maximum(dbz, floor), floor)
        dbz = dbz.astype(np.float32)
        dbz[:, ~covered] = np.nan
        ms = (velocity * (dx_m / frame_step)).astype(np.float32)
        motion = np.repeat(ms[np.newaxis], n_leads, axis=0)
        info.update(
            motion_seconds=round(motion_s, 3),
            seconds=round(time.perf_counter() - started, 3),
            motion_frames=min(self.motion_frames, frames.shape[0]),
        )
        return ForecastResult(dbz=dbz, method=self.name, motion=motion, info=info)

    def _run(
        self,
        filled: np.ndarray,
        velocity: np.ndarray,
        timesteps: list[float],
        info: dict[str, Any],
        *,
        dx_m: float,
        frame_step_s: float,
    ) -> np.ndarray:
        """``(n_leads, z, y, x)`` dBZ from filled frames; NaN is taken as floor."""
        raise NotImplementedError

    def _extrapolated_level(
        self, last: np.ndarray, velocity: np.ndarray, timesteps: list[float],
        displacements: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One level's newest frame extrapolated (rain only), the limit of a
        method that cannot fit it; ``(leads, displacements)``, the displacements
        computed once for all such levels."""
        if displacements is None:
            displacements = lead_displacements(velocity, timesteps)
        floor = self.dbz_floor
        rain = np.where(last >= self.rain_threshold_dbz, last, floor)
        return np.stack([warp(rain, d, floor) for d in displacements]), displacements

    def _need_frames(self, filled: np.ndarray, n: int) -> np.ndarray:
        if filled.shape[0] < n:
            raise ForecasterError(
                f"{self.name} with ar_order {self.ar_order} needs {n} frames, "
                f"got {filled.shape[0]} (lower baselines.extrapolation.ar_order)"
            )
        return filled[-n:]

    @staticmethod
    def _timesteps_arg(timesteps: list[float]) -> int | list[float]:
        n = len(timesteps)
        if np.allclose(timesteps, np.arange(1, n + 1)):
            return n
        return list(timesteps)


class Extrapolation(_PystepsForecaster):
    """Lucas-Kanade motion, semi-Lagrangian advection of every level (dBZ)."""

    name = "extrapolation"

    def _run(self, filled, velocity, timesteps, info, **_grid):
        displacements = lead_displacements(velocity, timesteps)
        last = filled[-1]
        return np.stack([warp(last, d, self.dbz_floor) for d in displacements])


class SProg(_PystepsForecaster):
    """pysteps' S-PROG on dB rain rate, level by level with the composite motion."""

    name = "sprog"

    def _run(self, filled, velocity, timesteps, info, **_grid):
        ps = import_pysteps()
        used = self._need_frames(filled, self.ar_order + 1)
        r_thr = float(dbz_to_rainrate(self.rain_threshold_dbz))
        db_thr = 10.0 * np.log10(r_thr)
        zerovalue = db_thr - 5.0
        n_leads = len(timesteps)
        out = np.full((n_leads, *filled.shape[1:]), self.dbz_floor)
        skipped = 0
        extrapolated: list[int] = []
        displacements = None
        for z in range(filled.shape[1]):
            level = used[:, z]
            if not np.any(level >= self.rain_threshold_dbz):
                skipped += 1
                continue
            dbr, _ = ps.dB_transform(
                dbz_to_rainrate(level), threshold=r_thr, zerovalue=zerovalue
            )
            try:
                with _quiet():
                    fc = ps.sprog(
                        dbr, velocity, self._timesteps_arg(timesteps),
                        precip_thr=db_thr, n_cascade_levels=self.n_cascade_levels,
                        ar_order=self.ar_order, probmatching_method="cdf",
                        domain="spatial",
                    )
            except (RuntimeError, np.linalg.LinAlgError, IndexError):
                # pysteps cannot fit the AR model: every scale perfectly
                # correlated (steady motion, no growth: "nonstationary AR(p)"), or
                # too little rain for a correlation (NaN); or its percentile mask
                # indexes past the end when nearly no pixel is wet (pysteps 1.21,
                # nowcasts/utils.py compute_percentile_mask, seen on knmi-20210110).
                # S-PROG's limit in all of these is plain extrapolation.
                extrapolated.append(z)
                out[:, z], displacements = self._extrapolated_level(
                    level[-1], velocity, timesteps, displacements
                )
                continue
            rate, _ = ps.dB_transform(
                np.asarray(fc, dtype=np.float64), threshold=db_thr, inverse=True
            )
            out[:, z] = _rate_to_dbz(rate, r_thr, self.dbz_floor)
        info["levels_skipped"] = skipped
        info["sprog_extrapolated_levels"] = extrapolated
        return out


class Anvil(_PystepsForecaster):
    """pysteps' ANVIL on linear rain rate, level by level with the composite motion."""

    name = "anvil"

    def _run(self, filled, velocity, timesteps, info, **_grid):
        ps = import_pysteps()
        used = self._need_frames(filled, self.ar_order + 2)
        r_thr = float(dbz_to_rainrate(self.rain_threshold_dbz))
        n_leads = len(timesteps)
        out = np.full((n_leads, *filled.shape[1:]), self.dbz_floor)
        steps = self._timesteps_arg(timesteps)
        skipped = 0
        ar1_levels = []
        for z in range(filled.shape[1]):
            level = used[:, z]
            if not np.any(level[-1] >= self.rain_threshold_dbz):
                skipped += 1
                continue
            rate = np.where(level >= self.rain_threshold_dbz, dbz_to_rainrate(level), 0)
            fc = self._anvil(ps, rate, velocity, steps, self.ar_order)
            if not np.all(np.isfinite(fc)) and self.ar_order > 1:
                ar1_levels.append(z)
                fc1 = self._anvil(ps, rate[-3:], velocity, steps, 1)
                fc = np.where(np.isfinite(fc), fc, fc1)
            out[:, z] = _rate_to_dbz(fc, r_thr, self.dbz_floor)
        info["levels_skipped"] = skipped
        info["anvil_ar1_levels"] = ar1_levels
        return out

    def _anvil(self, ps, rate, velocity, steps, ar_order):
        with _quiet():
            return ps.anvil(
                rate, velocity, steps, rainrate=None,
                n_cascade_levels=self.n_cascade_levels, ar_order=ar_order,
                extrap_kwargs={"outval": 0.0},
            )


class Linda(_PystepsForecaster):
    """pysteps' LINDA, deterministic, on linear rain rate, level by level."""

    name = "linda"

    def __init__(
        self,
        *,
        ari_order: int = 1,
        feature_method: str = "blob",
        max_num_features: int = 25,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if ari_order not in (1, 2):
            raise ForecasterError(f"LINDA's ari_order is 1 or 2, got {ari_order}")
        self.ari_order = int(ari_order)
        self.feature_method = str(feature_method)
        self.max_num_features = int(max_num_features)

    @classmethod
    def _settings_params(cls, settings: Settings) -> dict[str, Any]:
        """``[baselines.linda]`` beside the shared ``[baselines.extrapolation]``."""
        li = settings.baselines.linda
        return {
            **super()._settings_params(settings),
            "ari_order": li.ari_order,
            "feature_method": li.feature_method,
            "max_num_features": li.max_num_features,
        }

    def _run(self, filled, velocity, timesteps, info, *, dx_m, frame_step_s):
        ps = import_pysteps()
        n_frames = self.ari_order + 2
        if filled.shape[0] < n_frames:
            raise ForecasterError(
                f"linda with ari_order {self.ari_order} needs {n_frames} frames, "
                f"got {filled.shape[0]}"
            )
        used = filled[-n_frames:]
        r_thr = float(dbz_to_rainrate(self.rain_threshold_dbz))
        out = np.full((len(timesteps), *filled.shape[1:]), self.dbz_floor)
        steps = self._timesteps_arg(timesteps)
        skipped = 0
        extrapolated: list[int] = []
        displacements = None
        for z in range(filled.shape[1]):
            level = used[:, z]
            if not np.any(level[-1] >= self.rain_threshold_dbz):
                skipped += 1
                continue
            rate = np.where(level >= self.rain_threshold_dbz, dbz_to_rainrate(level), 0)
            try:
                with _quiet():
                    fc = ps.linda(
                        rate, velocity, steps, feature_method=self.feature_method,
                        max_num_features=self.max_num_features,
                        ari_order=self.ari_order, add_perturbations=False,
                        kmperpixel=dx_m / 1000.0, timestep=frame_step_s / 60.0,
                    )
                fc = np.asarray(fc, dtype=np.float64)
                if fc.shape != out[:, z].shape or not np.any(np.isfinite(fc)):
                    raise ValueError(f"LINDA returned {fc.shape}")
            except (RuntimeError, ValueError, IndexError, np.linalg.LinAlgError):
                # no feature found, or too little rain to fit: extrapolation
                extrapolated.append(z)
                out[:, z], displacements = self._extrapolated_level(
                    level[-1], velocity, timesteps, displacements
                )
                continue
            out[:, z] = _rate_to_dbz(fc, r_thr, self.dbz_floor)
        info["levels_skipped"] = skipped
        info["linda_extrapolated_levels"] = extrapolated
        return out


def _rate_to_dbz(rate: np.ndarray, r_thr: float, floor: float) -> np.ndarray:
    """dBZ from rain rate; below ``r_thr``, negative or NaN is the floor."""
    rate = np.asarray(rate, dtype=np.float64)
    rain = np.isfinite(rate) & (rate >= r_thr)
    dbz = rainrate_to_dbz(np.where(rain, rate, 1.0))
    return np.where(rain, np.maximum(dbz, floor), floor)
