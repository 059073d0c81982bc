"""The storm-tracked prior on its own: CSI per lead of its variants, no network.

Run (the ablation table in BENCHMARKS.md)::

    python bench/cell_prior.py --real ../shared/data/radar-cases --synthetic 12

Each variant moves the last frame along a prior
(:func:`nowcast.forecasters.storm_prior.cell_prior`) exactly as the advection head does
with its residual at zero: pixels inside a storm's moved footprint warped by the
storm's displacement, the rest by the composed Lucas-Kanade flow, from the field
with cleared storms capped. Variants:

- ``flow``: the optical-flow prior alone (what the network was trained with);
- ``cells-keep``: storms move with TITAN's motion, nothing cleared
  (``clear_px = inf``);
- ``cells-clear``: every storm that departs from the flow around it is cleared
  (``fit_px = inf``);
- ``cells``: the default rule: cleared only when the track is also straight.

Sequences as in ``bench/skill.py`` (15 scans pooled 2 x 2, every 5 scans; synthetic
250 x 250 x 18 at 2 km from seed ``--seed0``), scored with TITAN beside them; CSI on
the column-maximum composite, contingency counts summed over a group.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from skill import N_IN, N_OUT, SHARED, case_sequences, synthetic_sequences  # noqa: E402

from nowcast.forecasters import get_forecaster  # noqa: E402
from nowcast.forecasters.flow import flow_prior  # noqa: E402
from nowcast.forecasters.storm_prior import (  # noqa: E402
    CellPriorParams,
    cell_prior,
    flow_displacements,
)
from nowcast.model.warp import warp_masked  # noqa: E402
from nowcast.verification import ScoreAccumulator  # noqa: E402

VARIANTS = {
    "flow": None,
    "cells-keep": CellPriorParams(clear_px=math.inf),
    "cells-clear": CellPriorParams(fit_px=math.inf),
    "cells": CellPriorParams(),
}
THRESHOLDS = (20.0, 35.0)


def prior_forecast(past, times, dx, params, tracker) -> np.ndarray:
    """``(N_OUT, z, y, x)`` dBZ: the last frame moved along the prior."""
    flow = flow_prior(past[-3:], 0.0)
    if params is None:  # the flow alone
        disp, mask, ceiling = flow_displacements(flow, N_OUT), None, None
    else:
        times_s = [(t - times[0]).total_seconds() for t in times]
        p = cell_prior(
            past, times_s, dx_m=dx, step_s=300.0, flow=flow, n_leads=N_OUT,
            params=params, tracker=tracker,
        )
        disp, mask, ceiling = p.disp, p.mask, p.ceiling
    last = torch.from_numpy(np.nan_to_num(past[-1], nan=0.0))
    out = warp_masked(
        last[None].expand(N_OUT, -1, -1, -1),
        torch.from_numpy(disp),
        None if ceiling is None else torch.from_numpy(mask[:, None]),
        None if ceiling is None else torch.from_numpy(ceiling)[None, None],
    ).numpy()
    return np.where(np.isfinite(past[-1])[None], out, np.nan)


def score(sequences, titan):
    """CSI accumulators of TITAN and every variant (``titan`` also tracks)."""
    accs = {m: ScoreAccumulator(THRESHOLDS, 35.0, (5,)) for m in ["titan", *VARIANTS]}
    n = 0
    for frames, times, dx in sequences:
        past, future = frames[:N_IN], frames[N_IN:]
        forecasts = {"titan": titan.forecast(
            past, times[:N_IN], N_OUT, dx_m=dx, interval_s=300).dbz}
        for name, params in VARIANTS.items():
            forecasts[name] = prior_forecast(past, times[:N_IN], dx, params, titan)
        for name, fc in forecasts.items():
            for k in range(N_OUT):
                accs[name].add(300 * (k + 1), fc[k], future[k])
        n += 1
    return accs, n


def table(title, accs, n) -> str:
    leads = " | ".join(f"t+{5 * (k + 1)}" for k in range(N_OUT))
    out = [f"\n#### {title} ({n} sequences)\n", f"| prior | dBZ | {leads} |",
           "| --- | --- |" + " --- |" * N_OUT]
    for thr in THRESHOLDS:
        for name, acc in accs.items():
            vals = [acc.counts(300 * (k + 1), thr, "composite").csi
                    for k in range(N_OUT)]
            out.append(f"| {name} | {thr:g} | "
                       + " | ".join(f"{v:.3f}" for v in vals) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", nargs="*", type=Path, default=[SHARED / "radar-cases"])
    ap.add_argument("--synthetic", type=int, default=12, help="sequences per regime")
    ap.add_argument("--seed0", type=int, default=1000)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    titan = get_forecaster("titan")
    groups = []
    for root in args.real:
        seqs = [s for case in sorted(p for p in root.iterdir() if p.is_dir())
                for s in case_sequences(case)]
        groups.append((f"real: {root.name}", seqs))
    for regime in ("advection", "multicell", "supercell"):
        if args.synthetic > 0:
            groups.append((
                f"synthetic {regime}, seeds {args.seed0}-"
                f"{args.seed0 + args.synthetic - 1}",
                synthetic_sequences(regime, args.synthetic, 18, 250, args.seed0),
            ))
    text = []
    for title, seqs in groups:
        t0 = time.perf_counter()
        accs, n = score(seqs, titan)
        text.append(table(title, accs, n))
        print(text[-1], flush=True)
        print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
