"""Class-balanced epochs and batches of one level count.

Contract
--------
- :func:`class_balanced_indices` ``(classes, n, rng)`` draws ``n`` indices into
  ``classes`` (one class index a sample), the same number from every class
  present (the remainder of ``n`` goes to randomly chosen classes, one each).
  A class with at least its quota of samples is drawn without replacement; a
  smaller one is repeated whole as often as the quota allows and topped up
  without replacement (so every sample of a rare class is used). A class with no
  sample is skipped with a logged warning and the others share its quota. The
  result is shuffled.
- :class:`BalancedBatchSampler` is a batch sampler for a
  :class:`torch.utils.data.ConcatDataset` of the training datasets (archive and
  synthetic): each epoch it draws ``n`` (``curriculum.sequences``, 2000) balanced
  indices over the union, groups them by the datasets' level count (a batch never
  mixes the 1-level composites with 18-level volumes) and cuts each group into
  batches of ``batch_size``; batches come in random order. The draw depends only
  on ``(seed, epoch)``: call :meth:`BalancedBatchSampler.set_epoch` each epoch
  (and ``set_epoch`` on the datasets, for fresh simulated storms and
  augmentation).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import structlog
from torch.utils.data import Sampler

from nowcast.curriculum.classify import CLASSES

log = structlog.get_logger(__name__)


def class_balanced_indices(
    classes: Sequence[int] | np.ndarray,
    n: int,
    rng: np.random.Generator,
    n_classes: int = len(CLASSES),
) -> np.ndarray:
    """``n`` indices into ``classes``, balanced between classes (see module doc).

    Parameters
    ----------
    classes
        The class index (``0 .. n_classes - 1``) of every sample.
    n
        How many to draw.
    rng
        The random generator.
    n_classes
        Number of classes (3: advection, multicell, supercell).

    Returns
    -------
    numpy.ndarray
        int64 indices, shuffled; empty when there is no sample at all.
    """
    classes = np.asarray(classes, dtype=np.int64)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    members = [np.flatnonzero(classes == c) for c in range(n_classes)]
    present = [c for c in range(n_classes) if members[c].size]
    missing = [c for c in range(n_classes) if not members[c].size]
    if not present:
        log.warning("no training sample in any class")
        return np.zeros(0, dtype=np.int64)
    if missing:
        log.warning(
            "classes without samples are skipped",
            missing=[CLASSES[c] if c < len(CLASSES) else c for c in missing],
        )
    quota = np.full(len(present), n // len(present))
    quota[rng.permutation(len(present))[: n % len(present)]] += 1
    drawn = []
    for c, q in zip(present, quota):
        pool = members[c]
        repeats, rest = divmod(int(q), pool.size)
        parts = [np.tile(pool, repeats), rng.choice(pool, rest, replace=False)]
        drawn.append(np.concatenate(parts))
    out = np.concatenate(drawn).astype(np.int64)
    return out[rng.permutation(out.size)]


class BalancedBatchSampler(Sampler[list[int]]):
    """Class-balanced batches over a ConcatDataset, one level count a batch.

    Parameters
    ----------
    datasets
        The datasets of the ConcatDataset, in its order; each needs ``classes``
        (class index a sample) and ``levels`` (its level count).
    n
        Samples an epoch (``curriculum.sequences``).
    batch_size
        ``curriculum.batch_size``.
    seed
        ``curriculum.seed``.
    drop_last
        Drop each group's last incomplete batch (GroupNorm prefers full ones).
    """

    def __init__(
        self,
        datasets: Sequence[object],
        n: int = 2000,
        batch_size: int = 16,
        *,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.datasets = list(datasets)
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _layout(self) -> tuple[np.ndarray, np.ndarray]:
        classes, groups = [], []
        for ds in self.datasets:
            c = np.asarray(ds.classes, dtype=np.int64)  # type: ignore[attr-defined]
            classes.append(c)
            groups.append(np.full(c.size, getattr(ds, "levels", None) or 0))
        if not classes:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(classes), np.concatenate(groups)

    def batches(self) -> list[list[int]]:
        """This epoch's batches (indices into the ConcatDataset)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        classes, groups = self._layout()
        chosen = class_balanced_indices(classes, self.n, rng)
        out: list[list[int]] = []
        for g in np.unique(groups[chosen]) if chosen.size else []:
            picked = chosen[groups[chosen] == g]
            for i in range(0, picked.size, self.batch_size):
                batch = picked[i : i + self.batch_size]
                if self.drop_last and batch.size < self.batch_size:
                    continue
                out.append([int(j) for j in batch])
        out = [out[i] for i in rng.permutation(len(out))]
        self._cache = (self.epoch, out)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())
