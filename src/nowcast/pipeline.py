"""The forecasting pipeline: scans in, a forecast set in the TITAN layout out.

``nowcast predict`` runs it offline over a directory; the daemon runs it on its
rolling buffer. Both go through the same three functions; which scans make a
sequence is :func:`nowcast.radar.sequences.find_sequences`'s rule.

Contract
--------
- :func:`prepare_frames` stacks the scans of one sequence into ``(t, z, y, x)``
  float32 dBZ (NaN: no coverage) and pools them to the model grid with
  :func:`nowcast.radar.pool` (``grid.pool_factor``); the scans must share one grid.
- :func:`forecast_set` asks a forecaster for ``n_leads`` leads ``interval_s``
  apart on the model grid and checks the result against the interface
  (:func:`~nowcast.forecasters.interface.output_problem`); it returns the
  :class:`~nowcast.forecasters.interface.ForecastResult`.
- :func:`write_set` writes a result for TITAN: upsampled back to the scans' grid
  when :attr:`WriteOptions.upsample` (bicubic), clamped to
  ``[dbz_floor, dbz_max]`` either way, written with
  :func:`nowcast.radar.write_forecast_set` as the options say (layout, field
  name, compression, ``_latest_data_info`` writer and data type, the motion as
  ``U``/``V`` when ``write_motion`` and the forecaster gives one). Without
  upsampling the set is written on the pooled grid. It returns a
  :class:`WrittenSet`: the files, the grid and, as :attr:`WrittenSet.verify_frames`,
  the written volumes as a reader gets them back, on the model grid (pooled again
  when upsampled): what ``nowcast eval`` scores, so the daemon verifies that.
- Errors are :class:`~nowcast.errors.NowcastError` subclasses that name what went
  wrong: :class:`~nowcast.errors.ForecasterError` for scans on different grids, a
  grid the pool factor does not divide, or a forecaster whose result breaks the
  interface; :class:`~nowcast.errors.ForecastWriteError` when writing fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import structlog

from nowcast.errors import ForecasterError
from nowcast.forecasters.interface import (
    ForecastResult,
    Forecaster,
    SequenceContext,
    output_problem,
)
from nowcast.radar import ForecastFile, Grid, Scan, pool, upsample, write_forecast_set
from nowcast.radar.grid_mapping import client_mapping
from nowcast.radar.scan import Origin
from nowcast.radar.writer import as_stored

if TYPE_CHECKING:
    from nowcast.config import Settings

log = structlog.get_logger(__name__)

#: Motion is upsampled with the dBZ routine; these bounds leave it unclamped.
_MOTION_BOUND = 1.0e6


@dataclass(frozen=True)
class WriteOptions:
    """How a forecast set is written (``[output]``, ``[radar]`` and ``[grid]``)."""

    output_dir: Path
    pool_factor: int
    interval_s: float
    dbz_floor: float
    dbz_max: float
    upsample: bool = True
    layout: str = "forecast"
    field_name: str = "DBZ"
    complevel: int = 1
    write_motion: bool = False
    writer: str = "nowcast"
    data_type: str = "nc"
    #: ``[radar] site_latitude/longitude/altitude_m``: the origin written when set
    #: (else the scans' own, or the one derived from their grid mapping)
    site: Origin | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        output_dir: str | Path | None = None,
        upsample: bool | None = None,
    ) -> "WriteOptions":
        """From the :class:`~nowcast.config.Settings`, with the command's overrides."""
        out, g, r = settings.output, settings.grid, settings.radar
        return cls(
            output_dir=Path(
                output_dir if output_dir is not None else settings.paths.output_dir
            ),
            pool_factor=g.pool_factor,
            interval_s=g.interval_s,
            dbz_floor=r.dbz_floor,
            dbz_max=r.dbz_max,
            upsample=out.upsample if upsample is None else bool(upsample),
            layout=out.layout,
            field_name=out.field_name,
            complevel=out.complevel,
            write_motion=out.write_motion,
            writer=out.writer_name,
            data_type=out.data_type,
            site=(
                Origin(r.site_latitude, r.site_longitude, r.site_altitude_m)
                if r.site_latitude is not None and r.site_longitude is not None
                else None
            ),
        )


_said: set[str] = set()


def _say_once(note: str) -> None:
    """Log what the written grid mapping lacks, once a process for each kind of
    grid (a daemon says it at its first forecast, not at every one)."""
    if note and note not in _said:
        _said.add(note)
        log.warning("grid_mapping", note=note)


@dataclass
class WrittenSet:
    """One forecast set as written (see the module contract)."""

    issue_time: datetime
    files: list[ForecastFile]
    grid: Grid
    method: str
    model: str
    verify_frames: np.ndarray  # (lead, z, y, x) dBZ on the model grid, as stored


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


def forecast_set(
    forecaster: Forecaster,
    frames: np.ndarray,
    times: Sequence[datetime],
    n_leads: int,
    *,
    dx_m: float,
    interval_s: float,
    context: SequenceContext | None = None,
) -> ForecastResult:
    """The forecaster's ``n_leads`` leads from ``frames``, checked (module contract).

    Raises
    ------
    ForecasterError
        When the result breaks the interface (shape, values where covered).
    """
    result = forecaster.forecast(
        frames, times, n_leads, dx_m=dx_m, interval_s=interval_s, context=context
    )
    who = forecaster.name or type(forecaster).__name__
    problem = output_problem(result, frames, n_leads)
    if problem is not None:
        raise ForecasterError(f"{who} {problem}")
    result.method = result.method or who
    return result


def write_set(
    result: ForecastResult,
    grid: Grid,
    issue_time: datetime,
    options: WriteOptions,
    *,
    model_name: str = "",
) -> WrittenSet:
    """Write ``result`` for TITAN (see the module contract).

    Parameters
    ----------
    result
        On the model grid (``grid`` pooled by ``options.pool_factor``).
    grid
        The scans' own grid (the newest scan's).
    issue_time
        The newest scan's time.
    model_name
        Written as ``nowcast_model`` (the checkpoint's name for the model).
    """
    o = options
    n_leads = int(np.shape(result.dbz)[0])
    motion = result.motion if o.write_motion else None
    if o.upsample and o.pool_factor > 1:
        size = grid.shape[1:]
        volumes = upsample(result.dbz, size, o.dbz_floor, o.dbz_max)
        if motion is not None:
            motion = upsample(
                np.nan_to_num(motion), size, -_MOTION_BOUND, _MOTION_BOUND
            )
        target_grid = grid
    else:
        target_grid = grid.pooled(o.pool_factor)
        volumes = np.clip(result.dbz, o.dbz_floor, o.dbz_max)
    origin = o.site or grid.origin
    _say_once(client_mapping(target_grid, origin).note)
    files = write_forecast_set(
        o.output_dir,
        issue_time,
        [round(k * o.interval_s) for k in range(1, n_leads + 1)],
        volumes,
        target_grid,
        method=result.method,
        model=model_name,
        layout=o.layout,
        field_name=o.field_name,
        complevel=o.complevel,
        motion=motion,
        writer=o.writer,
        data_type=o.data_type,
        origin=origin,
    )
    stored = np.maximum(as_stored(volumes), np.float32(o.dbz_floor))
    if target_grid is grid and o.pool_factor > 1:
        stored = pool(stored, o.pool_factor)
    return WrittenSet(
        issue_time=issue_time,
        files=files,
        grid=target_grid,
        method=result.method,
        model=model_name,
        verify_frames=np.asarray(stored, dtype=np.float32),
    )


def _name(scan: Scan) -> str:
    return str(scan.source) if scan.source else f"scan {scan.time:%Y-%m-%d %H:%M:%S}"
