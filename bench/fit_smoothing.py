"""Fit a checkpoint's lead-dependent smoothing on verification windows.

Run (how ``models/real2d.pt`` got its smoothing; see its model card)::

    python bench/fit_smoothing.py --model models/real2d.pt \
        --real ../shared/data/radar-cases-steps ../shared/data/radar-cases-more \
        --families bom2,bom66,mrms,knmi --out models/real2d.pt

The model forecaster (storm-tracked prior, as it forecasts in the daemon) runs
unsmoothed on every window of the given case folders (pooled 2 x 2; cases at
another step resampled as in ``bench/skill.py``) and/or ``--synthetic N``
simulated sequences a regime (seeds from ``--seed0``: keep them apart from the
skill table's 1000 + i), and
:func:`nowcast.forecasters.lead_smoothing.fit_spread` picks, lead by lead, the
spread (m/s; the Gaussian's sigma is spread x lead time, blurred in linear Z at
each window's own grid spacing and step) with the best mean CSI at 20 and 35 dBZ,
in ``--mode`` (default ``max``: the larger of the blur and the blur
probability-matched to the unblurred values).
The checkpoint is written again (``--out``, atomically) with
``state["lead_smoothing"]``: the spreads, every candidate's score, the windows and
this command. Weights are untouched. The forecasts are fitted without the
checkpoint's Lagrangian trend (applied after the smoothing), and a trend it
carries is dropped from the output, as it was fitted on the old smoothing:
refit it with ``bench/fit_trend.py``. Fit on cases the skill table does not
score (``radar-cases`` and the storms outside ``../shared`` are the test).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from skill import N_IN, N_OUT, case_sequences, synthetic_sequences

from nowcast.forecasters import get_forecaster
from nowcast.forecasters.lead_smoothing import (
    CANDIDATES_M_S,
    MODES,
    fit_spread,
)
from nowcast.model.checkpoint import load_checkpoint, save_checkpoint


def windows(args):
    for root in args.real:
        for case in sorted(p for p in root.iterdir() if p.is_dir()):
            if args.families and case.name.split("-")[0] not in args.families:
                continue
            n = 0
            for frames, times, dx in case_sequences(case, resample=True):
                n += 1
                yield case.name, frames, times, dx
            print(f"{case.name}: {n} windows", file=sys.stderr, flush=True)
    for regime in args.regimes.split(","):
        if args.synthetic <= 0 or not regime:
            break
        seqs = synthetic_sequences(
            regime, args.synthetic, args.levels, args.size, args.seed0
        )
        for frames, times, dx in seqs:
            yield f"synthetic {regime}", frames, times, dx


def forecasts(args, forecaster, sources: dict[str, int]):
    """``forecaster`` on every window of ``args`` it runs on: ``(result, past,
    future, dx_m, step_s)``; ``sources`` counts the windows by case (shared with
    fit_trend.py)."""
    for name, frames, times, dx in windows(args):
        if not forecaster.runs_on(frames.shape[1]):
            continue
        past, future = frames[:N_IN], frames[N_IN:]
        step = (times[1] - times[0]).total_seconds()
        result = forecaster.forecast(
            past, times[:N_IN], N_OUT, dx_m=dx, interval_s=step
        )
        sources[name] = sources.get(name, 0) + 1
        yield result, past, future, dx, step


def window_arguments(ap: argparse.ArgumentParser) -> None:
    """The checkpoint and the verification windows (shared with fit_trend.py)."""
    ap.add_argument("--model", required=True, type=Path, help="checkpoint to fit")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="checkpoint to write (default: print the fit only)",
    )
    ap.add_argument("--real", nargs="*", type=Path, default=[])
    ap.add_argument(
        "--families",
        type=lambda v: [f for f in v.split(",") if f],
        default=[],
        help="only cases whose name starts FAMILY- (e.g. bom2,bom66,mrms,knmi)",
    )
    ap.add_argument("--synthetic", type=int, default=0, help="sequences a regime")
    ap.add_argument("--regimes", default="advection,multicell,supercell")
    ap.add_argument("--levels", type=int, default=18)
    ap.add_argument("--size", type=int, default=250)
    ap.add_argument("--seed0", type=int, default=5000)
    ap.add_argument("--device", default="cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    window_arguments(ap)
    ap.add_argument(
        "--candidates",
        default=",".join(f"{c:g}" for c in CANDIDATES_M_S),
        help="spreads to try, m/s",
    )
    ap.add_argument(
        "--mode",
        choices=MODES,
        default="max",
        help="blur: the blur alone; matched: probability-matched to "
        "the unblurred values; max: the larger of the two",
    )
    args = ap.parse_args()
    forecaster = get_forecaster(
        "model",
        checkpoint=args.model,
        device=args.device,
        smoothing=False,
        trend=False,
    )
    t0 = time.perf_counter()
    sources: dict[str, int] = {}

    def pairs():
        for result, _past, future, dx, step in forecasts(args, forecaster, sources):
            yield result.dbz, future, dx, step

    candidates = [float(c) for c in args.candidates.split(",") if c]
    fit = fit_spread(pairs(), candidates, mode=args.mode)
    seconds = time.perf_counter() - t0
    print(f"{fit.windows} windows, {seconds:.0f} s")
    print(
        "| lead | " + " | ".join(f"{c:g} m/s" for c in fit.candidates) + " | chosen |"
    )
    print("| --- " * (len(fit.candidates) + 2) + "|")
    for k, row in enumerate(fit.scores):
        cells = " | ".join(f"{v:.3f}" for v in row)
        print(f"| t+{k + 1} | {cells} | {fit.spread_m_s[k]:g} |")
    if args.out is None:
        return
    state = load_checkpoint(args.model, map_location="cpu")
    if state.pop("lead_trend", None):  # fitted on the old smoothing's forecasts
        print("dropped the checkpoint's Lagrangian trend: refit it with "
              "bench/fit_trend.py on the new smoothing")
    state["lead_smoothing"] = {
        **fit.to_dict(),
        "sources": sources,
        "command": "python bench/fit_smoothing.py " + " ".join(sys.argv[1:]),
        "seconds": round(seconds, 1),
    }
    save_checkpoint(args.out, state)
    print(f"wrote {args.out} (spread_m_s {fit.spread_m_s})")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
