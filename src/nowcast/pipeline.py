"""The forecasting pipeline: scans in, a forecast set in the TITAN layout out.

``nowcast predict`` runs it offline over a directory; the daemon runs it on its
rolling buffer. Both go through the same three functions.

Contract
--------
- :func:`find_sequences` says which scans close a run of ``n_frames`` consecutive
  scans at the expected interval: every step of the run lies within
  ``[interval_s / max_gap_factor, interval_s * max_gap_factor]``. A step outside
  (a gap, a missing or rejected scan, a repeated time) starts a new run. One
  sequence a closing scan, oldest first, as indices into the ``times`` given.
- :func:`prepare_frames` stacks the scans of one sequence into ``(t, z, y, x)``
  float32 dBZ (NaN: no coverage) and pools them to the model grid with
  :func:`nowcast.radar.pool` (``grid.pool_factor``); the scans must share one grid.
- :func:`forecast_and_write` pools, asks the forecaster for
  ``grid.output_frames`` leads ``grid.interval_s`` apart, upsamples them back to
  the scans' grid (when ``output.upsample``; bicubic, clamped to
  ``[radar.dbz_floor, radar.dbz_max]``) and writes them with
  :func:`nowcast.radar.write_forecast_set` as ``[output]`` says (layout, field
  name, compression, ``_latest_data_info`` writer and data type, and the motion
  as ``U``/``V`` when ``output.write_motion`` and the forecaster gives one). The
  issue time is the newest scan's time; without upsampling the forecast is
  written on the pooled grid. It returns a :class:`PipelineResult`: the files
  written, the :class:`~nowcast.baselines.interface.ForecastResult` (on the
  model grid), and seconds spent pooling, forecasting, upsampling and writing.
- Errors are :class:`~nowcast.errors.NowcastError` subclasses that name what went
  wrong: :class:`~nowcast.errors.ForecasterError` for scans on different grids, a
  grid the pool factor does not divide, or a forecaster that returns the wrong
  shape; :class:`~nowcast.errors.ForecastWriteError` when writing fails.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.baselines.interface import ForecastResult, Forecaster
from nowcast.errors import ForecasterError
from nowcast.radar import ForecastFile, Grid, Scan, pool, upsample, write_forecast_set

#: Motion is upsampled with the dBZ routine; these bounds leave it unclamped.
_MOTION_BOUND = 1.0e6


@dataclass
class PipelineResult:
    """One forecast set: what was written and how long each stage took."""

    issue_time: datetime
    files: list[ForecastFile]
    forecast: ForecastResult
    grid: Grid
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return float(sum(self.timings.values()))


def find_sequences(
    times: Sequence[datetime],
    n_frames: int,
    interval_s: float,
    max_gap_factor: float = 1.5,
) -> list[tuple[int, ...]]:
    """Runs of ``n_frames`` consecutive scans at the interval (see module doc).

    Parameters
    ----------
    times
        Scan times, in any order (timezone-aware).
    n_frames
        Scans a sequence needs (``grid.input_frames``).
    interval_s
        Expected time between scans (``grid.interval_s``).
    max_gap_factor
        Tolerance: a step must lie within ``[interval_s / f, interval_s * f]``
        (``daemon.max_gap_factor``).

    Returns
    -------
    list of tuple of int
        For every scan that closes a run, the indices (into ``times``) of the
        ``n_frames`` scans of the run, oldest first; sequences in time order.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if max_gap_factor < 1:
        raise ValueError(f"max_gap_factor must be >= 1, got {max_gap_factor}")
    shortest = interval_s / max_gap_factor
    longest = interval_s * max_gap_factor
    order = sorted(range(len(times)), key=lambda i: times[i])
    sequences: list[tuple[int, ...]] = []
    run: list[int] = []
    for i in order:
        if run:
            step = (times[i] - times[run[-1]]).total_seconds()
            if not shortest <= step <= longest:
                run = []
        run.append(i)
        if len(run) >= n_frames:
            sequences.append(tuple(run[-n_frames:]))
    return sequences


def _one_grid(scans: Sequence[Scan]) -> Scan:
    """The newest scan, after checking that every scan is on its grid."""
    if not scans:
        raise ForecasterError("no scans to forecast from")
    last = scans[-1]
    for scan in scans[:-1]:
        if scan.dbz.shape != last.dbz.shape or not scan.grid.same_horizontal(
            last.grid
        ):
            raise ForecasterError(
                f"{_name(scan)} ({scan.dbz.shape}) is not on the grid of "
                f"{_name(last)} ({last.dbz.shape}): a sequence needs one grid"
            )
    return last


def prepare_frames(scans: Sequence[Scan], pool_factor: int) -> tuple[np.ndarray, Grid]:
    """Stack and pool the scans of one sequence.

    Returns
    -------
    frames
        ``(t, z, y // f, x // f)`` float32 dBZ, NaN for no coverage, oldest first.
    grid
        The pooled grid (of the newest scan).

    Raises
    ------
    ForecasterError
        When the scans are not on one grid or the pool factor does not divide it.
    """
    last = _one_grid(scans)
    stacked = np.stack([np.asarray(s.dbz, dtype=np.float32) for s in scans])
    try:
        frames = pool(stacked, pool_factor)
    except ValueError as exc:
        raise ForecasterError(f"{_name(last)}: {exc}") from None
    return np.asarray(frames, dtype=np.float32), last.grid.pooled(pool_factor)


def forecast_and_write(
    forecaster: Forecaster,
    scans: Sequence[Scan],
    settings: Any,
    *,
    model_name: str = "",
    output_dir: str | Path | None = None,
    upsample_output: bool | None = None,
    frames: np.ndarray | None = None,
) -> PipelineResult:
    """Forecast from one sequence of scans and write the set for TITAN.

    Parameters
    ----------
    forecaster
        Any :class:`~nowcast.baselines.interface.Forecaster`.
    scans
        The sequence, oldest first (``grid.input_frames`` of them in practice).
    settings
        The :class:`~nowcast.config.Settings` (``grid``, ``radar``, ``output``,
        ``paths.output_dir``).
    model_name
        Written as ``nowcast_model`` (the checkpoint's name for the model).
    output_dir
        Overrides ``paths.output_dir``.
    upsample_output
        Overrides ``output.upsample``.
    frames
        The pooled ``(t, z, y, x)`` frames of ``scans`` when the caller already
        has them (the daemon pools each scan once, as it arrives); pooled here
        otherwise.

    Returns
    -------
    PipelineResult
    """
    grid_cfg, radar, out_cfg = settings.grid, settings.radar, settings.output
    target = Path(output_dir) if output_dir is not None else settings.paths.output_dir
    do_upsample = out_cfg.upsample if upsample_output is None else upsample_output
    n_leads = grid_cfg.output_frames
    interval_s = grid_cfg.interval_s

    t0 = time.perf_counter()
    if frames is None:
        frames, pooled_grid = prepare_frames(scans, grid_cfg.pool_factor)
    else:
        pooled_grid = _one_grid(scans).grid.pooled(grid_cfg.pool_factor)
    t1 = time.perf_counter()
    result = forecaster.forecast(
        frames,
        [s.time for s in scans],
        n_leads,
        dx_m=pooled_grid.dx_m,
        interval_s=interval_s,
    )
    t2 = time.perf_counter()
    expected = (n_leads, *frames.shape[1:])
    if result.dbz.shape != expected:
        raise ForecasterError(
            f"{forecaster.name or type(forecaster).__name__} returned shape "
            f"{result.dbz.shape}, expected {expected}"
        )
    motion = result.motion if out_cfg.write_motion else None
    if do_upsample and grid_cfg.pool_factor > 1:
        grid = scans[-1].grid
        size = grid.shape[1:]
        volumes = upsample(result.dbz, size, radar.dbz_floor, radar.dbz_max)
        if motion is not None:
            motion = upsample(
                np.nan_to_num(motion), size, -_MOTION_BOUND, _MOTION_BOUND
            )
    else:
        grid = pooled_grid
        volumes = np.clip(result.dbz, radar.dbz_floor, radar.dbz_max)
    files = write_forecast_set(
        target,
        scans[-1].time,
        [k * interval_s for k in range(1, n_leads + 1)],
        volumes,
        grid,
        method=result.method or forecaster.name,
        model=model_name,
        layout=out_cfg.layout,
        field_name=out_cfg.field_name,
        complevel=out_cfg.complevel,
        motion=motion,
        writer=out_cfg.writer_name,
        data_type=out_cfg.data_type,
    )
    t3 = time.perf_counter()
    return PipelineResult(
        issue_time=scans[-1].time,
        files=files,
        forecast=result,
        grid=grid,
        timings={"pool": t1 - t0, "forecast": t2 - t1, "write": t3 - t2},
    )


def _name(scan: Scan) -> str:
    return str(scan.source) if scan.source else f"scan {scan.time:%Y-%m-%d %H:%M:%S}"
