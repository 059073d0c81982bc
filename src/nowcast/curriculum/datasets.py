"""Torch datasets of training sequences: archived radar and fresh simulated storms.

Contract
--------
Both datasets return the same sample, a ``dict`` of tensors (``n_input`` = 8,
``n_output`` = 7, ``Z`` levels, ``Y x X`` grid):

=============== ============================ =========================================
key             type / shape                 meaning
=============== ============================ =========================================
``inputs``      float32 ``(8, Z, Y, X)``     past frames, unit range
                                             (:func:`nowcast.model.normalise.to_unit`,
                                             NaN -> 0)
``targets``     float32 ``(7, Z, Y, X)``     future frames, unit range (NaN -> 0)
``mask``        float32 ``(7, Z, Y, X)``     1 where the target is covered, 0 where it
                                             was NaN: losses and scores skip those
``flow``        float32 ``(2, Y, X)``        optical-flow prior, px/step (x, y):
                                             Lucas-Kanade on the column max of the
                                             newest 3 inputs (:mod:`.motion`)
``motion``      float32 ``(7, 2, Y, X)``     true motion px/step of each target frame
                                             (the simulator's motion at frame
                                             ``8 + k``); zeros for real data
``has_motion``  float32 ``()``               1 for simulated samples, 0 for real
``regime``      int64 ``()``                 0 advection, 1 multicell, 2 supercell
``dx_km``       float32 ``()``               grid spacing of the sample
``source``      str                          ``"<case>@<time>"`` or
                                             ``"synthetic:<regime>:<seed>"``
=============== ============================ =========================================

With ``cell_prior`` (:class:`~nowcast.forecasters.storm_prior.CellPriorParams`,
``[curriculum] storm_prior``) a sample also carries the storm-tracked prior the
forecaster moves along (``prior_disp``, ``prior_motion``, ``prior_mask``,
``prior_ceiling``: :mod:`nowcast.curriculum.storm_priors`), made on the whole
grid before the crop and turned with the sample; the archive's are cached
(:meth:`ArchiveCache.storm_prior`).

- **Scale**: everything the network sees is in pixels and steps, so it is
  resolution-agnostic: the 240 m Cagliari grid and the 2 km composites share a
  model; ``dx_km`` is there for losses or reports that want physical units.
- **Levels**: real composites have ``Z = 1``, the simulator (and the daemon's
  volumes) ``Z = 18``. Default collation cannot stack them: batches must come from
  one level count, which :class:`nowcast.curriculum.sampling.BalancedBatchSampler`
  guarantees over a :class:`torch.utils.data.ConcatDataset`.
- **Augmentation** (``augment=True``): one of the eight flips/quarter turns
  (:mod:`.augment`), the same for every array of the sample, vectors turned with
  the field. ``crop=N`` cuts an ``N x N`` window (random when ``random_crop``,
  else centred), after the flow is computed on the whole grid. Random draws come
  from ``(seed, epoch, index)``, so a sample is reproducible; call
  :meth:`set_epoch` each epoch for new draws.
- :class:`SyntheticSequenceDataset` draws fresh storms each epoch: index ``i`` of
  epoch ``e`` is the regime ``regimes[i % len(regimes)]`` with the simulator seed
  drawn from ``(seed, e, i)``. It renders at ``size * pool_factor`` with
  ``dx_km / pool_factor`` and pools (mean) to ``size`` when ``pool_factor > 1``,
  the way real scans are ingested; ``pool_factor=1`` (the default) renders on
  the model grid directly, four times cheaper. ``flow="lk"`` runs Lucas-Kanade on
  the fly (~0.05-0.3 s at 250 x 250), ``"true"`` gives the simulator's motion of
  the newest input frame, ``"zeros"`` none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from nowcast.config import SyntheticConfig
from nowcast.curriculum import augment as aug
from nowcast.curriculum.archive_cache import ArchiveCache
from nowcast.curriculum.classify import CLASSES, class_index
from nowcast.forecasters.flow import FLOW_FRAMES, flow_prior
from nowcast.curriculum.windows import Window
from nowcast.model.normalise import to_unit
from nowcast.radar import pool

FlowMode = Literal["lk", "true", "zeros"]


def _tracker(cell_prior: Any, tracker: Any) -> Any:
    """The storm tracker of a dataset's prior (None without a prior)."""
    if cell_prior is None or tracker is not None:
        return tracker
    from nowcast.forecasters.titan import TitanForecaster

    return TitanForecaster()


def _rng(seed: int, epoch: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), int(index), int(stream)])


def make_sample(
    frames: np.ndarray,
    n_input: int,
    flow: np.ndarray,
    motion: np.ndarray | None,
    regime: int,
    dx_km: float,
    source: str,
    *,
    dbz_min: float = 0.0,
    dbz_max: float = 70.0,
    transform: aug.Dihedral | None = None,
    box: tuple[slice, slice] | None = None,
    prior: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Assemble a sample dict from ``(t, z, y, x)`` dBZ frames (see the module doc).

    ``motion`` is ``(n_output, 2, y, x)`` px/step, or ``None`` for real data;
    ``prior`` the window's storm-tracked prior on the whole grid
    (:func:`nowcast.curriculum.storm_priors.window_prior`), cropped and turned
    with the rest.
    """
    past, future = frames[:n_input], frames[n_input:]
    n_out = future.shape[0]
    ny, nx = frames.shape[-2:]
    arrays = {
        "inputs": to_unit(past, dbz_min, dbz_max),
        "targets": to_unit(future, dbz_min, dbz_max),
        "mask": np.isfinite(future).astype(np.float32),
        "flow": np.asarray(flow, dtype=np.float32),
        "motion": (
            np.zeros((n_out, 2, ny, nx), np.float32)
            if motion is None
            else np.asarray(motion, dtype=np.float32)
        ),
    }
    if prior is not None:
        arrays.update(prior)
    arrays = aug.apply(arrays, transform, box)
    sample: dict[str, Any] = {k: torch.from_numpy(v) for k, v in arrays.items()}
    sample["has_motion"] = torch.tensor(0.0 if motion is None else 1.0)
    sample["regime"] = torch.tensor(int(regime), dtype=torch.int64)
    sample["dx_km"] = torch.tensor(float(dx_km), dtype=torch.float32)
    sample["source"] = source
    return sample


class _Augmenting(Dataset):
    """What both datasets share: epoch, seed, crop and flip settings."""

    def __init__(
        self,
        *,
        augment: bool,
        crop: int | None,
        random_crop: bool | None,
        seed: int,
        epoch: int,
        dbz_min: float,
        dbz_max: float,
    ) -> None:
        self.augment = bool(augment)
        self.crop = int(crop) if crop else None
        self.random_crop = self.augment if random_crop is None else bool(random_crop)
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.dbz_min = float(dbz_min)
        self.dbz_max = float(dbz_max)

    def set_epoch(self, epoch: int) -> None:
        """New random draws (augmentation, crops, simulated storms) from now on."""
        self.epoch = int(epoch)

    def _draws(
        self, index: int, shape: tuple[int, int]
    ) -> tuple[aug.Dihedral | None, tuple[slice, slice] | None]:
        rng = _rng(self.seed, self.epoch, index, 1)
        box = None
        if self.crop is not None:
            box = aug.crop_box(shape, self.crop, rng if self.random_crop else None)
        transform = None
        if self.augment:
            size = (self.crop, self.crop) if self.crop else shape
            transform = aug.random_dihedral(rng, square=size[0] == size[1])
        return transform, box


class ArchiveSequenceDataset(_Augmenting):
    """Windows of the archive cache as training samples (see the module doc).

    Parameters
    ----------
    cache
        The :class:`~nowcast.curriculum.archive_cache.ArchiveCache`.
    windows
        From :func:`nowcast.curriculum.windows.find_windows` /
        :func:`~nowcast.curriculum.windows.split_windows`.
    n_input
        Input frames (``grid.input_frames``); the rest of a window is the target.
    augment, crop, random_crop, seed, epoch
        See the module doc.
    flow
        ``"lk"``: the cached Lucas-Kanade prior (computed on first use, see
        :meth:`ArchiveCache.flow`; :meth:`precompute_flow` fills the cache);
        ``"zeros"``: none.
    dbz_min, dbz_max
        The unit range (``model.dbz_min``, ``model.dbz_max``).
    cell_prior, tracker
        With ``cell_prior``, samples carry the storm-tracked prior (module doc),
        tracked by ``tracker`` (default: a
        :class:`~nowcast.forecasters.titan.TitanForecaster` of defaults).
    """

    def __init__(
        self,
        cache: ArchiveCache,
        windows: Sequence[Window],
        *,
        n_input: int = 8,
        augment: bool = False,
        crop: int | None = None,
        random_crop: bool | None = None,
        seed: int = 0,
        epoch: int = 0,
        flow: Literal["lk", "zeros"] = "lk",
        dbz_min: float = 0.0,
        dbz_max: float = 70.0,
        cell_prior: Any = None,
        tracker: Any = None,
    ) -> None:
        super().__init__(
            augment=augment,
            crop=crop,
            random_crop=random_crop,
            seed=seed,
            epoch=epoch,
            dbz_min=dbz_min,
            dbz_max=dbz_max,
        )
        if flow not in ("lk", "zeros"):
            raise ValueError(f"unknown flow {flow!r} for real data: choose lk or zeros")
        self.cache = cache
        self.windows = list(windows)
        self.n_input = int(n_input)
        self.flow = flow
        if cell_prior is not None and flow != "lk":
            raise ValueError("the storm-tracked prior is built on the flow: flow='lk'")
        self.cell_prior, self.tracker = cell_prior, _tracker(cell_prior, tracker)
        levels = {w.levels for w in self.windows}
        if len(levels) > 1:
            raise ValueError(
                f"windows with different level counts {sorted(levels)}: make one "
                "dataset a level count (a batch cannot mix them)"
            )
        for w in self.windows:
            if w.n_frames <= self.n_input:
                raise ValueError(
                    f"{w.case}: window of {w.n_frames} frames has no target "
                    f"after {self.n_input} inputs"
                )

    @property
    def classes(self) -> np.ndarray:
        """The class index of every sample (for the balanced sampler)."""
        return np.array([w.regime for w in self.windows], dtype=np.int64)

    @property
    def levels(self) -> int | None:
        return self.windows[0].levels if self.windows else None

    def __len__(self) -> int:
        return len(self.windows)

    def flow_at(self, index: int) -> np.ndarray:
        w = self.windows[index]
        if self.flow == "zeros":
            ny, nx = self.cache.cases[w.case].shape[-2:]
            return np.zeros((2, ny, nx), np.float32)
        return self.cache.flow(w.case, w.start + self.n_input - 1, FLOW_FRAMES)

    def precompute_flow(self) -> int:
        """Compute the flow prior of every window not yet cached (and the storm
        prior, with ``cell_prior``); return how many flows were computed."""
        done = 0
        for i, w in enumerate(self.windows):
            last = w.start + self.n_input - 1
            if self.flow == "lk" and not self.cache.has_flow(w.case, last, FLOW_FRAMES):
                self.flow_at(i)
                done += 1
            self.prior_at(i)
        return done

    def prior_at(self, index: int) -> dict[str, np.ndarray] | None:
        """The storm-tracked prior of window ``index`` (None without one)."""
        if self.cell_prior is None:
            return None
        w = self.windows[index]
        return self.cache.storm_prior(
            w.case,
            w.start + self.n_input - 1,
            n_input=self.n_input,
            n_leads=w.n_frames - self.n_input,
            params=self.cell_prior,
            tracker=self.tracker,
            dbz_min=self.dbz_min,
            dbz_max=self.dbz_max,
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        w = self.windows[index]
        frames = self.cache.dbz(w.case, w.start, w.stop)
        transform, box = self._draws(index, frames.shape[-2:])
        return make_sample(
            frames,
            self.n_input,
            self.flow_at(index),
            None,
            w.regime,
            w.dx_km,
            f"{w.case}@{w.time:%Y-%m-%dT%H:%M:%SZ}",
            dbz_min=self.dbz_min,
            dbz_max=self.dbz_max,
            transform=transform,
            box=box,
            prior=self.prior_at(index),
        )


class SyntheticSequenceDataset(_Augmenting):
    """Fresh simulated storms each epoch, balanced over ``regimes``.

    Parameters
    ----------
    n_per_epoch
        Samples an epoch (``curriculum.synthetic_per_epoch``).
    regimes
        Regime names, drawn in turn (index ``i`` is ``regimes[i % len]``).
    size, levels, dx_km
        The model grid: 250 x 250 x 18 at 2 km by default (the 500 x 500 1 km
        radar grid after 2 x 2 pooling).
    seed, epoch
        The base seed and the epoch (:meth:`set_epoch`).
    n_input, n_output, interval_s
        ``grid.input_frames``, ``grid.output_frames``, ``grid.interval_s``.
    pool_factor
        Render ``pool_factor`` times finer and pool, as real scans are ingested.
    flow
        ``"lk"``, ``"true"`` or ``"zeros"`` (see the module doc).
    params
        Simulator settings (``[synthetic]``); its own grid fields are ignored.
    augment, crop, random_crop, dbz_min, dbz_max, cell_prior, tracker
        As for :class:`ArchiveSequenceDataset` (the prior made on the fly).
    """

    def __init__(
        self,
        n_per_epoch: int,
        regimes: Sequence[str] = CLASSES,
        *,
        size: int = 250,
        levels: int = 18,
        dx_km: float = 2.0,
        seed: int = 0,
        epoch: int = 0,
        n_input: int = 8,
        n_output: int = 7,
        interval_s: float = 300.0,
        pool_factor: int = 1,
        flow: FlowMode = "lk",
        params: SyntheticConfig | None = None,
        augment: bool = False,
        crop: int | None = None,
        random_crop: bool | None = None,
        dbz_min: float = 0.0,
        dbz_max: float = 70.0,
        cell_prior: Any = None,
        tracker: Any = None,
    ) -> None:
        super().__init__(
            augment=augment,
            crop=crop,
            random_crop=random_crop,
            seed=seed,
            epoch=epoch,
            dbz_min=dbz_min,
            dbz_max=dbz_max,
        )
        self.cell_prior, self.tracker = cell_prior, _tracker(cell_prior, tracker)
        if n_per_epoch < 0:
            raise ValueError(f"n_per_epoch must be >= 0, got {n_per_epoch}")
        if not regimes:
            raise ValueError(
                "regimes is empty: give at least one of " + ", ".join(CLASSES)
            )
        if flow not in ("lk", "true", "zeros"):
            raise ValueError(f"unknown flow {flow!r}: choose lk, true or zeros")
        if pool_factor < 1:
            raise ValueError(f"pool_factor must be >= 1, got {pool_factor}")
        self.regimes = tuple(regimes)
        self._class = [class_index(r) for r in self.regimes]
        self.n_per_epoch = int(n_per_epoch)
        self.size, self.levels, self.dx_km = int(size), int(levels), float(dx_km)
        self.n_input, self.n_output = int(n_input), int(n_output)
        self.interval_s = float(interval_s)
        self.pool_factor = int(pool_factor)
        self.flow = flow
        self.params = params

    @property
    def classes(self) -> np.ndarray:
        """The class index of every sample (known without simulating)."""
        k = len(self.regimes)
        return np.array([self._class[i % k] for i in range(len(self))], np.int64)

    def __len__(self) -> int:
        return self.n_per_epoch

    def sim_seed(self, index: int) -> int:
        """The simulator seed of sample ``index`` in the current epoch."""
        ss = np.random.SeedSequence([self.seed, self.epoch, int(index)])
        return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from nowcast.synthetic import generate_sequence

        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of {len(self)}")
        regime = self.regimes[index % len(self.regimes)]
        seed = self.sim_seed(index)
        f = self.pool_factor
        seq = generate_sequence(
            regime,
            self.n_input + self.n_output,
            seed=seed,
            size=self.size * f,
            levels=self.levels,
            dx_km=self.dx_km / f,
            interval_s=self.interval_s,
            params=self.params,
        )
        frames, motion_ms = seq.frames, seq.motion
        if f > 1:
            frames = np.asarray(pool(frames, f), dtype=np.float32)
            motion_ms = np.asarray(pool(motion_ms, f), dtype=np.float32)
        motion = motion_to_px(motion_ms, self.interval_s, self.dx_km * 1000.0)
        if self.flow == "lk":
            flow = flow_prior(frames[self.n_input - FLOW_FRAMES : self.n_input])
        elif self.flow == "true":
            flow = motion[self.n_input - 1]
        else:
            flow = np.zeros((2, *frames.shape[-2:]), np.float32)
        prior = None
        if self.cell_prior is not None:
            from nowcast.curriculum.storm_priors import window_prior

            prior, _ = window_prior(
                frames[: self.n_input],
                [i * self.interval_s for i in range(self.n_input)],
                dx_m=self.dx_km * 1000.0,
                step_s=self.interval_s,
                flow=flow,
                n_leads=self.n_output,
                params=self.cell_prior,
                tracker=self.tracker,
                dbz_min=self.dbz_min,
                dbz_max=self.dbz_max,
            )
        transform, box = self._draws(index, frames.shape[-2:])
        return make_sample(
            frames,
            self.n_input,
            flow,
            motion[self.n_input :],
            self._class[index % len(self.regimes)],
            self.dx_km,
            f"synthetic:{regime}:{seed}",
            dbz_min=self.dbz_min,
            dbz_max=self.dbz_max,
            transform=transform,
            box=box,
            prior=prior,
        )


def motion_to_px(motion_ms: np.ndarray, interval_s: float, dx_m: float) -> np.ndarray:
    """m/s -> px/step (float32), for the simulator's ``(..., 2, y, x)`` motion."""
    scale = np.float32(float(interval_s) / float(dx_m))
    return (np.asarray(motion_ms, dtype=np.float32) * scale).astype(np.float32)
