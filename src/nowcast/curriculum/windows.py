"""Training windows over the archive cache, their classes, and the split.

Contract
--------
- A :class:`Window` is ``n_input + n_output`` (8 + 7 = 15) consecutive frames of
  one case at the expected interval: ``case`` (the cache key), ``start`` (index
  of its first frame in the case), ``time`` (its first frame's time), ``regime``
  (class index, :mod:`nowcast.curriculum.classify`, computed on the input frames
  only), ``dx_km`` and ``levels``.
- :func:`find_windows` lists every window of every case with
  :func:`nowcast.radar.sequences.find_sequences` (steps within ``[interval_s / f,
  interval_s * f]``; a gap ends a run), keeping one window every ``stride``
  frames within each run (1 for training, 5 for validation), oldest first.
- :func:`split_windows` separates training from validation by **time blocks**:
  every frame of a case is marked validation or training; a window whose frames
  are all validation goes to validation, one whose frames are all training to
  training, and one that straddles a boundary is dropped (the buffer), so no frame
  is ever in both sets. ``mode="tail"`` marks the last ``validation_fraction`` of
  each case's frames (at least one whole window's worth, and nothing when the
  case is too short for a training window and a validation window);
  ``mode="blocks"`` cuts each case into blocks of ``block_frames`` frames and
  marks every ``round(1 / validation_fraction)``-th block, counting from the
  last (a case with fewer blocks than that falls back to the tail rule).
  Short cases lose about a window's length of windows at each boundary (36-40
  frame cases: half their windows); ``mode="cases"`` loses none: the time blocks
  are whole cases, every ``round(1 / validation_fraction)``-th case in order of
  start time (counting from the latest) going to validation. Cases in
  ``holdout_cases`` (a key such as ``"radar-cases/fmi-20160928"`` or a folder
  name such as ``"fmi-20160928"``) go whole to ``holdout``: skill on cases the
  model never saw. Cases in ``validation_cases`` (named the same way) go whole
  to ``validation`` in place of the split, every other case (not held out) whole
  to training: a validation set chosen for its events (many convective
  windows), not by time. Validation and holdout windows are thinned to one
  every ``validation_stride`` frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

import numpy as np
import structlog

from nowcast.curriculum.archive_cache import ArchiveCache
from nowcast.curriculum.classify import RegimeRule, composite_with_nan, vote
from nowcast.radar.sequences import find_sequences

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Window:
    """One training sequence in the archive cache (see the module doc)."""

    case: str
    start: int
    n_frames: int
    time: datetime
    regime: int
    dx_km: float
    levels: int

    @property
    def stop(self) -> int:
        return self.start + self.n_frames


def find_windows(
    cache: ArchiveCache,
    *,
    n_input: int = 8,
    n_output: int = 7,
    stride: int = 1,
    interval_s: float | None = None,
    max_gap_factor: float | None = None,
    rule: RegimeRule | None = None,
    cases: Iterable[str] | None = None,
) -> list[Window]:
    """Every window of ``n_input + n_output`` frames in the cache.

    Parameters
    ----------
    cache
        The built :class:`~nowcast.curriculum.archive_cache.ArchiveCache`.
    n_input, n_output
        ``grid.input_frames``, ``grid.output_frames``.
    stride
        Keep one window every ``stride`` frames within a run.
    interval_s, max_gap_factor
        The expected interval and its tolerance; the cache's by default.
    rule
        The classification rule (default thresholds when ``None``).
    cases
        Only these case keys (default: all).

    Returns
    -------
    list of Window
        Case by case (sorted keys), oldest first.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    rule = rule or RegimeRule()
    interval = cache.interval_s if interval_s is None else float(interval_s)
    gap = cache.max_gap_factor if max_gap_factor is None else float(max_gap_factor)
    n_frames = n_input + n_output
    keys = sorted(cache.cases) if cases is None else list(cases)
    out: list[Window] = []
    for key in keys:
        case = cache.cases[key]
        dx_km = case.dx_m / 1000.0
        sequences = find_sequences(case.times, n_frames, interval, gap)
        starts = _run_starts(sequences, stride)
        if not starts:
            continue
        classes: dict[int, int] = {}
        for start in starts:
            for i in range(start, start + n_input):
                if i not in classes:
                    composite = composite_with_nan(cache.dbz(key, i, i + 1))[0]
                    classes[i] = rule.classify_frame(composite, dx_km)
            regime = vote([classes[i] for i in range(start, start + n_input)])
            out.append(
                Window(
                    key,
                    start,
                    n_frames,
                    case.times[start],
                    regime,
                    dx_km,
                    case.levels,
                )
            )
    return out


def _run_starts(sequences: list[tuple[int, ...]], stride: int) -> list[int]:
    """First indices of the sequences, one every ``stride`` within each run."""
    starts: list[int] = []
    offset = 0
    previous = None
    for seq in sequences:
        first = seq[0]
        offset = offset + 1 if previous is not None and first == previous + 1 else 0
        previous = first
        if offset % stride == 0:
            starts.append(first)
    return starts


class WindowSplit(NamedTuple):
    """Training, validation (time blocks) and held-out-case windows."""

    train: list[Window]
    validation: list[Window]
    holdout: list[Window]
    dropped: int


def _holdout_match(key: str, holdout: set[str]) -> bool:
    return key in holdout or key.rsplit("/", 1)[-1] in holdout


def split_windows(
    windows: Sequence[Window],
    *,
    validation_fraction: float = 0.2,
    holdout_cases: Iterable[str] = (),
    validation_cases: Iterable[str] = (),
    mode: Literal["tail", "blocks", "cases"] = "tail",
    block_frames: int = 60,
    validation_stride: int = 5,
) -> WindowSplit:
    """Split windows by time blocks within each case (see the module doc).

    Parameters
    ----------
    windows
        From :func:`find_windows` (usually at stride 1).
    validation_fraction
        Share of each case's frames marked validation
        (``curriculum.validation_fraction``).
    holdout_cases
        Case keys or folder names held out whole.
    validation_cases
        Case keys or folder names validated on whole, in place of ``mode``'s
        split (the other cases are trained on whole); a case in both is held out.
    mode
        ``"tail"`` (the end of each case), ``"blocks"`` (every k-th block of
        each case) or ``"cases"`` (every k-th whole case, in time order).
    block_frames
        Block length for ``mode="blocks"`` (at least one window long).
    validation_stride
        Keep one validation (and holdout) window every this many frames.

    Returns
    -------
    WindowSplit
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(
            f"validation_fraction must lie in (0, 1), got {validation_fraction}"
        )
    if mode not in ("tail", "blocks", "cases"):
        raise ValueError(f"unknown split mode {mode!r}: choose tail, blocks or cases")
    holdout = set(holdout_cases)
    chosen = set(validation_cases)
    by_case: dict[str, list[Window]] = {}
    for w in windows:
        by_case.setdefault(w.case, []).append(w)
    for kind, names in (("holdout", holdout), ("validation", chosen)):
        unknown = [h for h in names if not any(_holdout_match(k, {h}) for k in by_case)]
        if unknown:
            log.warning(f"{kind} cases without windows", cases=sorted(unknown))
    train: list[Window] = []
    validation: list[Window] = []
    held: list[Window] = []
    dropped = 0
    every = max(round(1.0 / validation_fraction), 2)
    in_time = sorted(
        (k for k in by_case if not _holdout_match(k, holdout)),
        key=lambda k: (by_case[k][0].time, k),
    )
    val_cases = {k for i, k in enumerate(reversed(in_time)) if i % every == 0}
    for key, ws in by_case.items():
        if _holdout_match(key, holdout):
            held.extend(_thin(ws, validation_stride))
            continue
        if chosen:
            if _holdout_match(key, chosen):
                validation.extend(_thin(ws, validation_stride))
            else:
                train.extend(ws)
            continue
        if mode == "cases":
            if key in val_cases:
                validation.extend(_thin(ws, validation_stride))
            else:
                train.extend(ws)
            continue
        n = max(w.stop for w in ws)
        length = ws[0].n_frames
        marked = _validation_frames(n, length, validation_fraction, mode, block_frames)
        val_here = []
        for w in ws:
            part = marked[w.start : w.stop]
            if part.all():
                val_here.append(w)
            elif not part.any():
                train.append(w)
            else:
                dropped += 1
        validation.extend(_thin(val_here, validation_stride))
    return WindowSplit(train, validation, held, dropped)


def _validation_frames(
    n: int, length: int, fraction: float, mode: str, block_frames: int
) -> np.ndarray:
    marked = np.zeros(n, dtype=bool)
    if mode == "tail":
        tail = max(math.ceil(fraction * n), length)
        if n - tail >= length:
            marked[n - tail :] = True
        return marked
    block = max(int(block_frames), length)
    every = max(round(1.0 / fraction), 2)
    n_blocks = math.ceil(n / block)
    if n_blocks < every:  # too short for blocks: the tail rule
        return _validation_frames(n, length, fraction, "tail", block_frames)
    for b in range(n_blocks):
        if (n_blocks - 1 - b) % every == 0:
            marked[b * block : (b + 1) * block] = True
    return marked


def _thin(windows: list[Window], stride: int) -> list[Window]:
    """One window every ``stride`` frames of each contiguous stretch."""
    if stride <= 1:
        return list(windows)
    out, anchor, previous = [], None, None
    for w in sorted(windows, key=lambda w: w.start):
        if previous is None or w.start != previous + 1:
            anchor = w.start
        previous = w.start
        if (w.start - anchor) % stride == 0:
            out.append(w)
    return out
