"""Runs of scans at the expected interval: the one gap rule.

Contract
--------
Two scans follow each other when the step between them lies within
``[interval_s / max_gap_factor, interval_s * max_gap_factor]``
(:func:`consecutive`; ``max_gap_factor`` is ``daemon.max_gap_factor``, >= 1). A
step outside (a gap, a missing or rejected scan, a repeated time) ends a run.
Every place that cuts scans into sequences uses this rule: the daemon's rolling
buffer, ``nowcast predict``, retraining's held-out sequences and the archive
cache's runs.

- :func:`find_sequences` gives, for every scan that closes a run of
  ``n_frames`` consecutive scans, the indices (into the ``times`` given, in any
  order) of the run's newest ``n_frames`` scans, oldest first; sequences in time
  order.
- :func:`split_runs` cuts *sorted* times into ``[start, stop)`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

__all__ = ["consecutive", "find_sequences", "split_runs"]


def consecutive(step_s: float, interval_s: float, max_gap_factor: float = 1.5) -> bool:
    """Whether a step of ``step_s`` seconds keeps a run going (see the contract)."""
    if max_gap_factor < 1:
        raise ValueError(f"max_gap_factor must be >= 1, got {max_gap_factor}")
    return interval_s / max_gap_factor <= step_s <= interval_s * max_gap_factor


def find_sequences(
    times: Sequence[datetime],
    n_frames: int,
    interval_s: float,
    max_gap_factor: float = 1.5,
) -> list[tuple[int, ...]]:
    """Runs of ``n_frames`` consecutive scans at the interval (see the contract).

    Parameters
    ----------
    times
        Scan times, in any order (timezone-aware).
    n_frames
        Scans a sequence needs (``grid.input_frames``).
    interval_s
        Expected time between scans (``grid.interval_s``).
    max_gap_factor
        The tolerance of :func:`consecutive`.

    Returns
    -------
    list of tuple of int
        For every scan that closes a run, the indices (into ``times``) of the
        ``n_frames`` scans of the run, oldest first; sequences in time order.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    consecutive(interval_s, interval_s, max_gap_factor)  # checks the factor
    order = sorted(range(len(times)), key=lambda i: times[i])
    sequences: list[tuple[int, ...]] = []
    run: list[int] = []
    for i in order:
        if run:
            step = (times[i] - times[run[-1]]).total_seconds()
            if not consecutive(step, interval_s, max_gap_factor):
                run = []
        run.append(i)
        if len(run) >= n_frames:
            sequences.append(tuple(run[-n_frames:]))
    return sequences


def split_runs(
    times: Sequence[datetime], interval_s: float, max_gap_factor: float = 1.5
) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of sorted ``times`` whose steps are all on time."""
    if not times:
        return []
    runs, start = [], 0
    for i in range(1, len(times)):
        step = (times[i] - times[i - 1]).total_seconds()
        if not consecutive(step, interval_s, max_gap_factor):
            runs.append((start, i))
            start = i
    runs.append((start, len(times)))
    return runs
