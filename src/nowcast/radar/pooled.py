"""Read a scan and pool it to the model grid: the one way every reader does it.

Contract
--------
:func:`read_pooled` ``(path, pool_factor, *, variable, dbz_floor, expected)``
reads ``path`` with :func:`nowcast.radar.read_scan` (the input contract) and pools
it ``pool_factor`` x ``pool_factor`` with :func:`nowcast.radar.pool`; it returns
the scan (at its own resolution) and the pooled ``(z, y, x)`` float32 frame (NaN:
no coverage). Any reason to refuse the file, a grid the pool factor does not
divide included, is a :class:`~nowcast.errors.ScanError` naming the file.
:func:`reading_options` gives the keyword arguments from the ``[radar]`` section
(variable, floor, expected grid). The daemon's intake, ``nowcast predict``,
``nowcast eval``, the archive cache and retraining's held-out scoring all read
through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nowcast.errors import ScanError
from nowcast.radar.reader import read_scan
from nowcast.radar.scan import Scan


def reading_options(radar: Any) -> dict[str, Any]:
    """``variable``, ``dbz_floor``, ``expected`` from a ``[radar]`` section."""
    return {
        "variable": radar.reflectivity_name or None,
        "dbz_floor": radar.dbz_floor,
        "expected": (radar.expected_levels, radar.expected_ny, radar.expected_nx),
    }


def read_pooled(
    path: str | Path,
    pool_factor: int,
    *,
    variable: str | None = None,
    dbz_floor: float = 0.0,
    expected: tuple[int, int, int] | None = None,
) -> tuple[Scan, np.ndarray]:
    """The scan and its pooled frame (see the module contract)."""
    from nowcast.radar.grid_ops import pool

    scan = read_scan(path, variable, dbz_floor, expected)
    try:
        frame = pool(scan.dbz, pool_factor)
    except ValueError as exc:
        raise ScanError(Path(path), str(exc)) from None
    return scan, np.asarray(frame, dtype=np.float32)
