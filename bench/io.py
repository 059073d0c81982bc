"""Benchmark: read + pool one scan, upsample + write one forecast set (7 files).

Run: ``python bench/io.py [--repeat 7] [--levels 18] [--size 500]``

Measures, for a 500 x 500 x 18 scan in the input contract (int16 packed, zlib):
- read + pool: ``nowcast.radar.read_scan`` + ``pool`` (2 x 2), against the peer
  ``xarray.open_dataset(...).coarsen(2, 2).mean()`` in the same run;
- upsample + write: ``upsample`` of 7 pooled volumes to 500 x 500 + ``write_forecast_set``
  (7 files, int16, zlib level from config, one chunk a level), against the peer
  ``xarray``'s ``interp(method="cubic")`` + ``to_netcdf`` of the same data.
Prints a markdown table with medians and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from nowcast.radar import Grid, Scan, pool, read_scan, upsample, write_forecast_set
from nowcast.radar import write_scan


def synthetic_scan(levels: int, size: int) -> Scan:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    base = 45 * np.exp(-((x - 0.4) ** 2 + (y - 0.5) ** 2) / 0.02)
    base += 25 * np.exp(-((x - 0.7) ** 2 + (y - 0.3) ** 2) / 0.05)
    vol = np.stack([base * (1 - k / (levels + 4)) for k in range(levels)])
    echo = vol > 5.0  # radar texture inside echoes, no-echo floor elsewhere
    vol = np.where(echo, vol + rng.normal(0, 1.5, vol.shape), 0.0)
    vol = vol.clip(0).astype(np.float32)
    grid = Grid(
        x_m=np.arange(size) * 1000.0, y_m=np.arange(size) * 1000.0,
        z_m=np.linspace(500, 17000, levels),
    )
    return Scan(datetime(2024, 6, 1, 12, tzinfo=timezone.utc), vol, grid)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--levels", type=int, default=18)
    ap.add_argument("--size", type=int, default=500)
    args = ap.parse_args()
    import xarray as xr

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = write_scan(synthetic_scan(args.levels, args.size), tmp / "in")
        scan = read_scan(path)

        def ours_read():
            s = read_scan(path)
            pool(s.dbz, 2)

        def xr_read():
            with xr.open_dataset(path) as ds:
                ds["DBZ"].coarsen(y=2, x=2).mean().load()

        pooled = pool(scan.dbz, 2)
        vols = np.repeat(pooled[None], 7, axis=0)
        leads = [300 * k for k in range(1, 8)]
        out = tmp / "out"

        def ours_write():
            up = upsample(vols, (args.size, args.size))
            write_forecast_set(out, scan.time, leads, up, scan.grid, method="bench")

        coarse = xr.DataArray(
            vols, dims=("lead", "z", "y", "x"),
            coords={"y": pooled_coord(args.size), "x": pooled_coord(args.size)},
        )
        fine = np.arange(args.size, dtype=float)

        def xr_write():
            up = coarse.interp(y=fine, x=fine, method="cubic",
                               kwargs={"fill_value": None})
            for k in range(7):
                enc = {"DBZ": {"zlib": True, "complevel": 1, "dtype": "int16",
                               "scale_factor": 0.01, "_FillValue": -32768}}
                up.isel(lead=k).rename("DBZ").to_dataset().to_netcdf(
                    out / f"xr_{k}.nc", encoding=enc)

        r_ours = timed(ours_read, args.repeat)
        r_xr = timed(xr_read, args.repeat)
        w_ours = timed(ours_write, args.repeat)
        w_xr = timed(xr_write, max(3, args.repeat // 2))

    cpu = platform.processor() or platform.machine()
    print(f"Machine: {platform.platform()}, {cpu}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"Python {sys.version.split()[0]}")
    print(f"Scan: {args.size} x {args.size} x {args.levels}, median of {args.repeat}\n")
    print("| step | nowcast (s) | xarray peer (s) | peer / nowcast | target |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| read + 2x2 pool one scan | {r_ours:.3f} | {r_xr:.3f} | "
          f"{r_xr / r_ours:.1f} | < 0.3 s |")
    print(f"| upsample + write 7 forecast files | {w_ours:.3f} | {w_xr:.3f} | "
          f"{w_xr / w_ours:.1f} | < 2 s |")


def pooled_coord(size: int) -> np.ndarray:
    return np.arange(size // 2) * 2 + 0.5


if __name__ == "__main__":
    main()
