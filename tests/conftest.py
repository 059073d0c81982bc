"""Shared fixtures: where the real radar cases are, and small scans made on the fly."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from nowcast.radar import Grid, Origin, Scan

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NOWCAST_SHARED_DIR", REPO.parent / "shared"))
RADAR_CASES = SHARED / "data" / "radar-cases"
RADAR_CASES_MORE = SHARED / "data" / "radar-cases-more"
RADAR_CASES_STEPS = SHARED / "data" / "radar-cases-steps"


def real_case_files(case: str = "fmi-20160928") -> list[Path]:
    for root in (RADAR_CASES, RADAR_CASES_MORE):
        files = sorted((root / case).glob("*/*.nc"))
        if files:
            return files
    return []


@pytest.fixture
def fmi_files() -> list[Path]:
    files = real_case_files("fmi-20160928")
    if not files:
        pytest.skip(f"shared radar cases not found under {RADAR_CASES}")
    return files


def make_grid(nz: int = 3, ny: int = 40, nx: int = 40, dx_m: float = 1000.0) -> Grid:
    return Grid(
        x_m=np.arange(nx) * dx_m - nx * dx_m / 2,
        y_m=np.arange(ny) * dx_m - ny * dx_m / 2,
        z_m=np.linspace(500.0, 17000.0, nz),
        mapping_name="grid_mapping",
        mapping_attrs={
            "grid_mapping_name": "azimuthal_equidistant",
            "latitude_of_projection_origin": 46.0,
            "longitude_of_projection_origin": 8.0,
            "false_easting": 0.0,
            "false_northing": 0.0,
        },
        origin=Origin(46.0, 8.0, 500.0),
    )


def moving_cell_scans(
    n: int = 10,
    nz: int = 3,
    size: int = 64,
    speed_px: tuple[float, float] = (1.0, 0.5),
    start: datetime = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc),
    interval_s: int = 300,
) -> list[Scan]:
    """A rigid Gaussian cell (55 dBZ core) moving ``speed_px`` (x, y) a scan."""
    grid = make_grid(nz, size, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    scans = []
    for k in range(n):
        cx = size * 0.3 + speed_px[0] * k
        cy = size * 0.3 + speed_px[1] * k
        r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 4.0**2)
        field = 55.0 * np.exp(-r2)
        vol = np.stack([field * (1.0 - 0.2 * i) for i in range(nz)]).astype(np.float32)
        vol = np.maximum(vol, 0.0)
        scans.append(Scan(start + timedelta(seconds=interval_s * k), vol, grid))
    return scans


@pytest.fixture
def cell_scans() -> list[Scan]:
    return moving_cell_scans()


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread for a module of tiny-tensor tests (``pytestmark =
    pytest.mark.usefixtures("torch_one_thread")``): tiny tensors gain nothing
    from threads, and on a busy 2-core machine OpenMP's waiting threads make
    every small op many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
