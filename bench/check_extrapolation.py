"""Check our pysteps extrapolation against pysteps' own recipe on a real case.

Reads a real case (default fmi-20160928, 40 scans), pools it to 250 x 250 and, for
sequences of 15 scans every 5 scans (8 in, 7 out), forecasts with

- ``ours``: :class:`nowcast.forecasters.pysteps_methods.Extrapolation` (dBZ,
  column-maximum Lucas-Kanade on the newest ``motion_frames`` frames);
- ``pysteps``: the recipe of pysteps' examples: Marshall-Palmer rain rate,
  ``dB_transform(threshold=0.1, zerovalue=-15)``, ``motion.get_method("LK")`` on the
  newest 3 frames, ``nowcasts.get_method("extrapolation")``, back to dBZ;
- ``persistence`` for scale;

and prints the mean CSI at 35 dBZ per lead (event = value >= threshold; the mean of
each forecast's CSI, and in brackets the CSI of the summed contingency counts).
``--all`` also scores S-PROG and ANVIL. ``--timing`` also times extrapolation,
S-PROG and ANVIL on one sequence at 250 x 250 x 1 and on an 18-level volume made
from it (upper levels weaker).

Usage: ``.venv/bin/python bench/check_extrapolation.py [--case NAME] [--all]
[--timing] [--motion-frames N ...]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CASES = REPO.parent / "shared" / "data" / "radar-cases"
N_IN, N_OUT, STRIDE = 8, 7, 5
THRESHOLD = 35.0


def load(case: str):
    from nowcast.radar import pool, read_scan

    files = sorted((CASES / case).glob("*/*.nc"))
    if not files:
        sys.exit(f"no scans under {CASES / case}")
    scans = [read_scan(f) for f in files]
    frames = pool(np.stack([s.dbz for s in scans]), 2)
    return frames, [s.time for s in scans], scans[0].grid.pooled(2).dx_m


def contingency(fc: np.ndarray, obs: np.ndarray) -> tuple[int, int, int]:
    valid = np.isfinite(obs)
    f = np.nan_to_num(fc, nan=-np.inf)[valid] >= THRESHOLD
    o = obs[valid] >= THRESHOLD
    return int((f & o).sum()), int((f & ~o).sum()), int((~f & o).sum())


def pysteps_reference(past: np.ndarray, n_leads: int) -> np.ndarray:
    """pysteps' example recipe on ``(t, y, x)`` dBZ; returns ``(n_leads, y, x)``."""
    from nowcast.forecasters.pysteps_methods import (
        dbz_to_rainrate,
        import_pysteps,
        rainrate_to_dbz,
    )

    import_pysteps()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pysteps import motion, nowcasts
        from pysteps.utils import transformation

        rate = dbz_to_rainrate(past)
        dbr, meta = transformation.dB_transform(rate, threshold=0.1, zerovalue=-15.0)
        dbr[~np.isfinite(dbr)] = meta["zerovalue"]
        velocity = motion.get_method("LK")(dbr[-3:])
        fc = nowcasts.get_method("extrapolation")(dbr[-1], velocity, n_leads)
        rate_f = transformation.dB_transform(fc, threshold=-10.0, inverse=True)[0]
    return rainrate_to_dbz(rate_f)


def skill(frames, times, dx_m, methods) -> None:
    starts = range(0, frames.shape[0] - N_IN - N_OUT + 1, STRIDE)
    scores = {name: [] for name in methods}
    seconds = {name: [] for name in methods}
    for s in starts:
        past = frames[s : s + N_IN]
        future = frames[s + N_IN : s + N_IN + N_OUT, 0]
        for name, run in methods.items():
            t0 = time.perf_counter()
            fc = run(past, times[s : s + N_IN])
            seconds[name].append(time.perf_counter() - t0)
            scores[name].append(
                [contingency(fc[k], future[k]) for k in range(N_OUT)]
            )
    print(f"{len(starts)} sequences; CSI >= {THRESHOLD:g} dBZ by lead (minutes)")
    print(f"{'method':<16}" + "".join(f"{5 * (k + 1):>14}" for k in range(N_OUT)))
    for name, table in scores.items():
        counts = np.asarray(table, dtype=float)  # (seq, lead, 3)
        hits, fa, miss = counts[..., 0], counts[..., 1], counts[..., 2]
        denom = hits + fa + miss
        per = np.where(denom > 0, hits / np.maximum(denom, 1), np.nan)
        mean = np.nanmean(per, axis=0)
        pooled = hits.sum(0) / np.maximum(denom.sum(0), 1)
        cells = "".join(f"{m:>7.3f} ({p:.3f})" for m, p in zip(mean, pooled))
        print(f"{name:<16}{cells}   {np.mean(seconds[name]):.2f} s/forecast")


def timing(frames, times, dx_m) -> None:
    from nowcast.forecasters import get_forecaster

    past = frames[:N_IN]
    volume = np.concatenate([past - 2.0 * k for k in range(18)], axis=1)
    volume = np.maximum(volume, 0.0)
    print("\nseconds per forecast (7 leads)")
    for name in ("extrapolation", "sprog", "anvil"):
        fc = get_forecaster(name)
        row = []
        for vol in (past, volume):
            t0 = time.perf_counter()
            result = fc.forecast(vol, times[:N_IN], N_OUT, dx_m=dx_m)
            row.append(time.perf_counter() - t0)
            assert result.dbz.shape == (N_OUT, *vol.shape[1:])
        info = {k: v for k, v in result.info.items() if "levels" in k}
        print(
            f"{name:<14} 250x250x1: {row[0]:6.2f}   250x250x18: {row[1]:6.2f}"
            f"   (18 levels: {info})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="fmi-20160928")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument(
        "--all", action="store_true", help="also score S-PROG and ANVIL"
    )
    parser.add_argument("--motion-frames", type=int, nargs="*", default=[3, 8])
    args = parser.parse_args()

    from nowcast.forecasters.pysteps_methods import Extrapolation

    frames, times, dx_m = load(args.case)
    print(f"{args.case}: {frames.shape} dx={dx_m:.0f} m")
    methods = {"persistence": lambda past, t: np.repeat(past[-1:], N_OUT, 0)[:, 0]}
    for n in args.motion_frames:
        ours = Extrapolation(motion_frames=n)
        methods[f"ours (mf={n})"] = (
            lambda past, t, ours=ours: ours.forecast(past, t, N_OUT, dx_m=dx_m).dbz[
                :, 0
            ]
        )
    methods["pysteps recipe"] = lambda past, t: pysteps_reference(past[:, 0], N_OUT)
    if args.all:
        from nowcast.forecasters import get_forecaster

        for name in ("sprog", "anvil"):
            fc = get_forecaster(name)
            methods[name] = lambda past, t, fc=fc: fc.forecast(
                past, t, N_OUT, dx_m=dx_m
            ).dbz[:, 0]
    skill(frames, times, dx_m, methods)
    if args.timing:
        timing(frames, times, dx_m)


if __name__ == "__main__":
    main()
