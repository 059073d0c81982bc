"""Fit a checkpoint's Lagrangian intensity trend on verification windows.

Run (how ``models/real2d.pt`` got its trend; see its model card)::

    python bench/fit_trend.py --model models/real2d.pt \
        --real ../shared/data/radar-cases-steps ../shared/data/radar-cases-more \
        --families bom2,bom66,mrms,knmi --out models/real2d.pt

The model forecaster runs as it forecasts in the daemon (storm-tracked prior,
the checkpoint's lead smoothing), without a trend, on every window of the given
case folders (pooled 2 x 2; cases at another step resampled as in
``bench/skill.py``) and/or ``--synthetic N`` simulated sequences a regime (the
windows of ``bench/fit_smoothing.py``, with its arguments), and
:func:`nowcast.forecasters.lead_trend.fit_trend` picks the smoothing scale of
the last step's change along the motion (metres, one for all leads) and each
lead's weights (one for growth, one for decay), with the best mean CSI at 20
and 35 dBZ. The checkpoint is
written again (``--out``, atomically) with ``state["lead_trend"]``: the scale,
the weights, every candidate scale's score, the per-lead scores with and
without it, the windows and this command. Weights of the network and the
smoothing are untouched; fit the smoothing first (the trend is fitted on, and
applied after, the smoothed forecast). Fit on cases the skill table does not
score (``radar-cases`` and the storms outside ``../shared`` are the test).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_smoothing import forecasts, window_arguments

from nowcast.forecasters import get_forecaster
from nowcast.forecasters.flow import FLOW_FRAMES, flow_prior
from nowcast.forecasters.lead_trend import SCALES_M, WEIGHTS, fit_trend
from nowcast.model.checkpoint import load_checkpoint, save_checkpoint


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    window_arguments(ap)
    ap.add_argument(
        "--scales",
        type=_floats,
        default=list(SCALES_M),
        help="smoothing scales of the trend to try, metres (comma-separated)",
    )
    ap.add_argument(
        "--weights",
        type=_floats,
        default=list(WEIGHTS),
        help="lead weights to try (comma-separated; 0 is always tried)",
    )
    args = ap.parse_args()
    forecaster = get_forecaster(
        "model", checkpoint=args.model, device=args.device, trend=False
    )
    floor = forecaster.dbz_floor
    t0 = time.perf_counter()
    sources: dict[str, int] = {}

    def pairs():
        for result, past, future, dx, _step in forecasts(args, forecaster, sources):
            flow = flow_prior(past[-FLOW_FRAMES:], floor)  # the model's trend flow
            yield result.dbz, future, past[-2:], flow, dx

    fit = fit_trend(
        pairs(), args.scales, args.weights, floor=floor,
        ceiling=max(forecaster.dbz_max, floor),
    )
    seconds = time.perf_counter() - t0
    print(f"{fit.windows} windows, {seconds:.0f} s")
    print("| scale | " + " | ".join(f"{s / 1000:g} km" for s in fit.scales_m) + " |")
    print("| --- " * (len(fit.scales_m) + 1) + "|")
    print("| mean CSI | " + " | ".join(f"{v:.4f}" for v in fit.scale_scores) + " |")
    print(f"\nscale {fit.scale_m / 1000:g} km\n")
    print("| lead | growth weight | decay weight | CSI without | CSI with |")
    print("| --- | --- | --- | --- | --- |")
    for k, (wg, wd, sc) in enumerate(zip(fit.weight, fit.decay_weight, fit.scores)):
        print(
            f"| t+{k + 1} | {wg:g} | {wd:g} | {sc['none']:.4f} | {sc['chosen']:.4f} |"
        )
    if args.out is None:
        return
    state = load_checkpoint(args.model, map_location="cpu")
    state["lead_trend"] = {
        **fit.to_dict(),
        "sources": sources,
        "command": "python bench/fit_trend.py " + " ".join(sys.argv[1:]),
        "seconds": round(seconds, 1),
    }
    save_checkpoint(args.out, state)
    print(
        f"wrote {args.out} (scale_m {fit.scale_m:g}, weight {fit.weight}, "
        f"decay_weight {fit.decay_weight})"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
