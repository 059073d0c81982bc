"""From the settings and the command line to training and validation loaders.

An adapter over the data pipeline (:mod:`.archive`, :mod:`.windows`,
:mod:`.datasets`, :mod:`.sampling`); it adds only what the trainer needs.

Contract
--------
:func:`build_data` ``(settings, DataSpec)`` -> :class:`TrainData`:

- **Archives** (``data_dirs``): read once into the archive cache (``cache_dir``,
  incremental), cut into windows of 8 + 7 scans, split by time blocks
  (``curriculum.validation_fraction``; ``split``: the ``tail`` of each case,
  ``blocks`` within each case or whole ``cases``, see
  :func:`~.windows.split_windows`) and ``holdout`` cases (a case's folder name
  or key; a data dir's name holds out every case under it); ``validate`` cases
  (named the same way) are validated on whole in place of the split, every
  other case trained on. Training windows
  are augmented (``curriculum.augment``) and randomly cropped to ``size`` when
  given; validation and holdout windows are centre-cropped, never augmented.
  Flow: the cached Lucas-Kanade prior. With ``cache_only`` the cache in
  ``cache_dir`` is used as it is, neither read from nor checked against any data
  dir (a machine that has the cache but not the scans, e.g. a lent GPU); a cache
  made with another ``grid.pool_factor``, ``radar.dbz_floor`` or
  ``grid.interval_s`` is refused.
- **Simulated storms** (``synthetic`` a epoch): fresh storms every epoch
  (:class:`~.datasets.SyntheticSequenceDataset`, seed ``seed``), rendered on a
  ``size`` (default ``synthetic.size / grid.pool_factor``) grid of ``levels``
  levels at ``synthetic.dx_km * grid.pool_factor``; plus a fixed validation set
  of ``ceil(synthetic * validation_fraction)`` storms (seed ``seed + 1``, never
  redrawn). Flow: Lucas-Kanade, as at inference.
- **Epochs**: class-balanced batches (:class:`~.sampling.BalancedBatchSampler`)
  of ``batch_size``, one level count and grid a batch. ``sequences`` samples an
  epoch when archives are used; with simulated storms only, each storm of the
  epoch once. :meth:`TrainData.set_epoch` redraws everything for an epoch.
- **Ranks**: :meth:`TrainData.train_loader` gives rank ``r`` of ``w`` the batches
  ``r, r + w, ...`` of the epoch's list, cut to a multiple of ``w`` so every rank
  steps equally often (the distributed sampler of this batch sampler);
  :meth:`TrainData.eval_loaders` gives each rank every ``w``-th sample, without
  padding (sums are all-reduced, so nothing counts twice).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from nowcast.errors import NowcastError

if TYPE_CHECKING:
    from nowcast.config import Settings

log = structlog.get_logger(__name__)

__all__ = ["DataSpec", "TrainData", "build_data"]


@dataclass
class DataSpec:
    """What to train on (defaults: ``[curriculum]``; see :func:`spec_from`)."""

    data_dirs: list[Path] = field(default_factory=list)
    synthetic: int = 64
    holdout: list[str] = field(default_factory=list)
    validate: list[str] = field(default_factory=list)
    size: int | None = None
    levels: int = 18
    sequences: int = 2000
    batch_size: int = 16
    cache_dir: Path | None = None
    seed: int = 0
    num_workers: int = 0
    split: str = "tail"
    cache_only: bool = False


def spec_from(settings: Settings, **overrides: Any) -> DataSpec:
    """A :class:`DataSpec` from the settings; ``None`` overrides are ignored."""
    cur = settings.curriculum
    spec = DataSpec(
        data_dirs=list(cur.data_dirs),
        synthetic=cur.synthetic_per_epoch,
        size=None,
        levels=settings.synthetic.levels,
        sequences=cur.sequences,
        batch_size=cur.batch_size,
        cache_dir=Path(settings.paths.state_dir) / "train_cache",
        seed=cur.seed,
        num_workers=cur.num_workers,
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(spec, key, value)
    return spec


class _Grouped(Dataset):
    """A dataset whose ``levels`` is a batch-group key (levels and grid)."""

    def __init__(self, dataset: Dataset, group: int) -> None:
        self.dataset = dataset
        self.levels = group

    @property
    def classes(self):
        return self.dataset.classes

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]


class _RankBatches(Sampler[list[int]]):
    """Every ``world``-th batch of a batch sampler, from ``rank``."""

    def __init__(self, batches: Sampler, rank: int, world: int) -> None:
        self.batches, self.rank, self.world = batches, rank, world

    def _mine(self) -> list[list[int]]:
        all_batches = list(self.batches)
        usable = len(all_batches) // self.world * self.world
        return all_batches[self.rank : usable : self.world]

    def __iter__(self):
        return iter(self._mine())

    def __len__(self) -> int:
        return len(self.batches) // self.world


@dataclass
class TrainData:
    """Training and validation data (see the module contract)."""

    train: ConcatDataset
    sampler: Any
    validation: list[Dataset]
    holdout: list[Dataset]
    levels: list[int]
    grids: list[tuple[int, int]]
    batch_size: int
    num_workers: int = 0
    describe: dict[str, Any] = field(default_factory=dict)
    pin_memory: bool = False  # set for CUDA

    def set_epoch(self, epoch: int) -> None:
        for ds in self.train.datasets:
            ds.set_epoch(epoch)
        self.sampler.set_epoch(epoch)

    def train_loader(self, rank: int = 0, world: int = 1) -> DataLoader:
        sampler = self.sampler
        if world > 1:
            sampler = _RankBatches(self.sampler, rank, world)
        return DataLoader(
            self.train,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def eval_loaders(
        self, which: str = "validation", rank: int = 0, world: int = 1
    ) -> list[DataLoader]:
        out = []
        for ds in getattr(self, which):
            idx = list(range(rank, len(ds), world))
            if not idx:
                continue
            out.append(
                DataLoader(
                    ds,
                    batch_size=self.batch_size,
                    sampler=idx,
                    num_workers=self.num_workers,
                    pin_memory=self.pin_memory,
                )
            )
        return out


def _synthetic(settings: Settings, spec: DataSpec, n: int, seed: int, train: bool):
    from nowcast.curriculum.datasets import SyntheticSequenceDataset

    grid = settings.grid
    size = spec.size or max(16, settings.synthetic.size // grid.pool_factor)
    return SyntheticSequenceDataset(
        n,
        size=size,
        levels=spec.levels,
        dx_km=settings.synthetic.dx_km * grid.pool_factor,
        seed=seed,
        n_input=grid.input_frames,
        n_output=grid.output_frames,
        interval_s=grid.interval_s,
        flow="lk",
        params=settings.synthetic,
        augment=train and settings.curriculum.augment,
        dbz_min=settings.model.dbz_min,
        dbz_max=settings.model.dbz_max,
        **_training_prior(settings),
    )


def _training_prior(settings: Settings) -> dict[str, Any]:
    """The datasets' storm-prior arguments: ``[curriculum] storm_prior`` on, the
    forecaster's ``[model.cell_prior]`` settings and ``[baselines.titan]``'s
    tracker (the prior the model forecasts with); off, none."""
    if not settings.curriculum.storm_prior:
        return {}
    from nowcast.forecasters.storm_prior import CellPriorParams
    from nowcast.forecasters.titan import TitanForecaster

    cfg = settings.model.cell_prior
    return {
        "cell_prior": CellPriorParams.from_dict(cfg.model_dump(exclude={"enabled"})),
        "tracker": TitanForecaster.from_settings(settings),
    }


def _expand_holdout(holdout: Sequence[str], keys: Sequence[str]) -> list[str]:
    """Holdout names, a data dir's name standing for every case under it."""
    out = []
    for name in holdout:
        under = [k for k in keys if k.split("/", 1)[0] == name and "/" in k]
        out.extend(under or [name])
    return out


def _open_cache(settings: Settings, cache_dir: Path | None):
    """The archive cache as it is (``cache_only``), if made for these settings."""
    from nowcast.curriculum.archive_cache import ArchiveCache

    if cache_dir is None:
        raise NowcastError("--cache-only needs the cache folder (--cache DIR)")
    cache = ArchiveCache.open(cache_dir)
    wanted = {
        "grid.pool_factor": (cache.pool_factor, settings.grid.pool_factor),
        "radar.dbz_floor": (cache.dbz_floor, settings.radar.dbz_floor),
        "grid.interval_s": (cache.interval_s, float(settings.grid.interval_s)),
    }
    for key, (has, want) in wanted.items():
        if float(has) != float(want):
            raise NowcastError(
                f"{cache_dir}: the cache was made with {key} = {has:g}, these "
                f"settings say {want:g}: rebuild it with --data"
            )
    if not cache.cases:
        raise NowcastError(f"{cache_dir}: the archive cache holds no case")
    return cache


def _archive(settings: Settings, spec: DataSpec):
    """Train, validation and holdout archive datasets, grouped by grid."""
    from nowcast.curriculum.archive_cache_build import build_cache
    from nowcast.curriculum.datasets import ArchiveSequenceDataset
    from nowcast.curriculum.windows import find_windows, split_windows

    if spec.cache_only:
        cache = _open_cache(settings, spec.cache_dir)
    else:
        missing = [str(d) for d in spec.data_dirs if not Path(d).is_dir()]
        if missing:
            raise NowcastError(
                f"--data / curriculum.data_dirs: not a folder: {missing[0]}"
            )
        cache = build_cache(
            spec.data_dirs,
            spec.cache_dir,
            pool_factor=settings.grid.pool_factor,
            dbz_floor=settings.radar.dbz_floor,
            variable=settings.radar.reflectivity_name or None,
            interval_s=settings.grid.interval_s,
            max_gap_factor=settings.daemon.max_gap_factor,
            pattern=settings.daemon.pattern,
        )
    grid = settings.grid
    windows = find_windows(
        cache, n_input=grid.input_frames, n_output=grid.output_frames
    )
    split = split_windows(
        windows,
        validation_fraction=settings.curriculum.validation_fraction,
        holdout_cases=_expand_holdout(spec.holdout, cache.cases),
        validation_cases=_expand_holdout(spec.validate, cache.cases),
        mode=spec.split,
    )
    common = dict(
        n_input=grid.input_frames,
        crop=spec.size,
        seed=spec.seed,
        dbz_min=settings.model.dbz_min,
        dbz_max=settings.model.dbz_max,
        **_training_prior(settings),
    )

    def by_grid(ws):
        groups: dict[tuple, list] = {}
        for w in ws:
            shape = cache.cases[w.case].shape[-2:]
            key = (w.levels, spec.size, spec.size) if spec.size else (w.levels, *shape)
            groups.setdefault(tuple(key), []).append(w)
        return groups

    out: dict[str, dict[tuple, Dataset]] = {}
    for name, ws, train in (
        ("train", split.train, True),
        ("validation", split.validation, False),
        ("holdout", split.holdout, False),
    ):
        out[name] = {
            key: ArchiveSequenceDataset(
                cache,
                group,
                augment=train and settings.curriculum.augment,
                random_crop=train,
                **common,
            )
            for key, group in by_grid(ws).items()
        }
    info = {
        "cases": len(cache),
        "train_windows": len(split.train),
        "validation_windows": len(split.validation),
        "holdout_windows": len(split.holdout),
        "dropped_windows": split.dropped,
    }
    return out, info


def build_data(settings: Settings, spec: DataSpec) -> TrainData:
    """Assemble the datasets and the balanced sampler (see the module contract).

    Raises
    ------
    NowcastError
        When there is nothing to train on, or nothing to validate on.
    """
    from nowcast.curriculum.sampling import BalancedBatchSampler

    parts: dict[str, dict[tuple, Dataset]] = {
        "train": {},
        "validation": {},
        "holdout": {},
    }
    describe: dict[str, Any] = {}
    if spec.data_dirs or spec.cache_only:
        archive, info = _archive(settings, spec)
        describe.update(info)
        for name in parts:
            parts[name].update(archive[name])
    if spec.synthetic > 0:
        syn = _synthetic(settings, spec, spec.synthetic, spec.seed, True)
        key = (syn.levels, syn.size, syn.size)
        n_val = math.ceil(spec.synthetic * settings.curriculum.validation_fraction)
        parts["train"][("synthetic", *key)] = syn
        parts["validation"][("synthetic", *key)] = _synthetic(
            settings, spec, n_val, spec.seed + 1, False
        )
        describe.update(synthetic=spec.synthetic, synthetic_validation=n_val)
    if not any(len(ds) for ds in parts["train"].values()):
        raise NowcastError(
            "nothing to train on: give --data DIR (scan archives) or --synthetic N "
            "(curriculum.data_dirs, curriculum.synthetic_per_epoch)"
        )
    if not any(len(ds) for ds in parts["validation"].values()):
        raise NowcastError(
            "nothing to validate on: the archives are too short for a validation "
            "block (curriculum.validation_fraction) and --synthetic is 0"
        )
    shapes = sorted({_shape_key(k) for k in parts["train"]})
    group_of = {s: i for i, s in enumerate(shapes)}
    train = [_Grouped(ds, group_of[_shape_key(k)]) for k, ds in parts["train"].items()]
    archive_used = any(k[0] != "synthetic" for k in parts["train"])
    n = spec.sequences if archive_used else sum(len(d) for d in train)
    sampler = BalancedBatchSampler(
        train, n=n, batch_size=spec.batch_size, seed=spec.seed
    )
    levels = sorted({s[0] for s in shapes})
    describe.update(samples_per_epoch=n, batches_per_epoch=len(sampler))
    return TrainData(
        train=ConcatDataset(train),
        sampler=sampler,
        validation=[d for d in parts["validation"].values() if len(d)],
        holdout=[d for d in parts["holdout"].values() if len(d)],
        levels=levels,
        grids=[tuple(s[1:]) for s in shapes],
        batch_size=spec.batch_size,
        num_workers=spec.num_workers,
        describe=describe,
    )


def _shape_key(key: Sequence) -> tuple[int, int, int]:
    """(levels, ny, nx) of a dataset key (synthetic keys start with a tag)."""
    k = tuple(key[1:]) if key and key[0] == "synthetic" else tuple(key)
    return tuple(int(v) for v in k)  # type: ignore[return-value]
