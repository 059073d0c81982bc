"""The skill table: CSI per lead of every forecaster, real cases and synthetic storms.

Run (the full table in BENCHMARKS.md)::

    python bench/skill.py --json bench/out/skill.json --markdown bench/out/skill.md

Real cases: every case folder under ``--real`` (default: ../shared/data/radar-cases
and radar-cases-more), pooled 2 x 2 to 250 x 250, sequences of 15 consecutive scans
(8 in, 7 out) starting every 5 scans; a case at another step
(``radar-cases-steps``) is resampled to the step nearest 5 minutes
(:func:`case_sequences`) and forecast at that step, its leads counted in steps.
Synthetic: ``--synthetic`` sequences per regime
from :func:`nowcast.synthetic.generate_sequence` on the pooled grid (250 x 250 at
2 km, 18 levels), seeds 1000 + i. Scores are aggregate CSI (contingency counts summed
over all forecasts of a group, then CSI) on the column-maximum composite (the real
cases have one level, so composite = 3D there), events ``>=`` threshold, pixels
without coverage left out. Beside the CSI, the frequency bias (forecast / observed
area of the composite above 35 and 45 dBZ, :data:`BIAS_THRESHOLDS`) per lead, so
that a method gaining CSI by forecasting too much area shows it, and the
probability of detection at 50 dBZ (:data:`POD_THRESHOLDS`: do the red cores
survive?) where such cores are observed. Also the median seconds per forecast
of each method.

LINDA (deterministic) is the slowest peer by far: about 25 s a rainy level at
250 x 250 on two cores, so on 18-level volumes it costs minutes a forecast;
``--linda-synthetic N`` scores it on the first N synthetic sequences of each
regime only (default 0: its rows show ``-`` there, and the seconds it took on
one volume are printed).

Trained models join as more methods: ``--model real2d=models/real2d.pt`` (any
number) scores that checkpoint through the ``model`` forecaster (with its default
storm-tracked prior, :mod:`nowcast.forecasters.storm_prior`; ``--flow-only NAME=CKPT``
scores it with the optical-flow prior alone), on the CPU unless ``--device`` says
otherwise. Each model also gets the row ``NAME-prior``: the same forecaster with
the network switched off (``[model] network = false``: its prior alone), so that
the table shows what the network adds (and ``NAME-unsmoothed`` when the checkpoint
carries a fitted lead smoothing, smoothing head or Lagrangian trend: the
network's frames without them); a model runs
only on the level count it was trained on
(``real2d`` on the real cases, ``demo3d`` on the 18-level storms), and shows ``-``
where it does not run. For example, the shipped models' rows::

    python bench/skill.py --real ../shared/data/radar-cases --synthetic 0 \
        --model real2d=models/real2d.pt
    python bench/skill.py --real --synthetic 20 --model demo3d=models/demo3d.pt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np

from nowcast.forecasters import get_forecaster
from nowcast.radar import pool, read_scan
from nowcast.verification import ScoreAccumulator

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
METHODS = ("persistence", "titan", "extrapolation", "sprog", "anvil", "linda")
THRESHOLDS = (20.0, 35.0)
BIAS_THRESHOLDS = (35.0, 45.0)
"""Where the frequency bias (forecast / observed area) is tabled too."""
POD_THRESHOLDS = (50.0,)
"""Where the probability of detection is tabled: do the red cores survive?"""
COUNTED = tuple(sorted({*THRESHOLDS, *BIAS_THRESHOLDS, *POD_THRESHOLDS}))
N_IN, N_OUT, STRIDE = 8, 7, 5


def case_sequences(case_dir: Path, interval_s: int = 300, resample: bool = False):
    """Yield (frames (15, z, y, x), times, dx) for each sequence of a case.

    The scans must be ``interval_s`` apart; with ``resample`` a case at another
    step keeps every ``round(interval_s / step)``-th scan (MRMS at 2 min: 4 min,
    from both offsets) and keeps that step (BoM at 6 and 10 min as they are):
    windows at a step of their own, their leads counted in steps.
    """
    files = sorted(case_dir.glob("*/*.nc"))
    scans = [read_scan(f) for f in files]
    frames = np.stack([pool(s.dbz, 2) for s in scans])
    times = [s.time for s in scans]
    dx = scans[0].grid.dx_m * 2
    n = N_IN + N_OUT
    every = 1
    if resample and len(times) > 1:
        gaps = [(b - a).total_seconds() for a, b in zip(times[:-1], times[1:])]
        step = float(np.median(gaps))
        every = max(1, int(round(interval_s / step)))
        interval_s = int(round(step * every))
    for offset in range(every):
        fr, ts = frames[offset::every], times[offset::every]
        for start in range(0, len(ts) - n + 1, STRIDE):
            win = ts[start : start + n]
            steps = {(b - a) for a, b in zip(win[:-1], win[1:])}
            if steps != {timedelta(seconds=interval_s)}:
                continue
            yield fr[start : start + n], win, dx


def synthetic_sequences(
    regime: str, count: int, levels: int, size: int, seed0: int = 1000
):
    from nowcast.synthetic import generate_sequence

    for i in range(count):
        seq = generate_sequence(
            regime, N_IN + N_OUT, seed=seed0 + i, size=size, levels=levels,
            dx_km=500.0 / size, interval_s=300,
        )
        yield seq.frames, list(seq.times), seq.grid.dx_m


def score_group(sequences, methods, forecasters, timings, limits=None):
    """Score every method on every sequence; ``limits[m]``: at most that many."""
    accs = {m: ScoreAccumulator(COUNTED, 35.0, (5,)) for m in methods}
    limits = limits or {}
    n = 0
    for frames, times, dx in sequences:
        past, future = frames[:N_IN], frames[N_IN:]
        for m in methods:
            runs_on = getattr(forecasters[m], "runs_on", None)
            if runs_on is not None and not runs_on(past.shape[1]):
                continue  # a model trained on another level count: "-" in the table
            if m in limits and n >= limits[m]:
                continue
            t0 = time.perf_counter()
            step = (times[1] - times[0]).total_seconds()
            result = forecasters[m].forecast(
                past, times[:N_IN], N_OUT, dx_m=dx, interval_s=step
            )
            timings[m].append(time.perf_counter() - t0)
            for k in range(N_OUT):
                accs[m].add(300 * (k + 1), result.dbz[k], future[k])
        n += 1
    return accs, n


def csi_rows(accs, n):
    rows = {}
    for m, acc in accs.items():
        for thr in THRESHOLDS:
            rows[(m, thr)] = [
                acc.counts(300 * (k + 1), thr, "composite").csi for k in range(N_OUT)
            ]
    bias = {
        f"{m}@{thr:g}": [
            acc.counts(300 * (k + 1), thr, "composite").bias for k in range(N_OUT)
        ]
        for m, acc in accs.items()
        for thr in BIAS_THRESHOLDS
    }
    pod = {
        f"{m}@{thr:g}": [
            acc.counts(300 * (k + 1), thr, "composite").pod for k in range(N_OUT)
        ]
        for m, acc in accs.items()
        for thr in POD_THRESHOLDS
    }
    return {
        "sequences": n,
        "csi": {f"{m}@{t:g}": v for (m, t), v in rows.items()},
        "bias": bias,
        "pod": pod,
    }


def markdown(results, methods) -> str:
    out = []
    leads = " | ".join(f"t+{5 * (k + 1)}" for k in range(N_OUT))
    for group, res in results["groups"].items():
        out.append(f"\n#### {group} ({res['sequences']} sequences)\n")
        out.append(f"| method | dBZ | {leads} | mean |")
        out.append("| --- | --- |" + " --- |" * (N_OUT + 1))
        for thr in THRESHOLDS:
            for m in methods:
                vals = res["csi"][f"{m}@{thr:g}"]
                finite = [v for v in vals if v is not None and np.isfinite(v)]
                mean = float(np.mean(finite)) if len(finite) == len(vals) else None
                cells = " | ".join(
                    "-" if v is None or not np.isfinite(v) else f"{v:.3f}"
                    for v in [*vals, mean]
                )
                out.append(f"| {m} | {thr:g} | {cells} |")
        out.append("\nFrequency bias (forecast / observed area above the threshold):\n")
        out.append(f"| method | dBZ | {leads} |")
        out.append("| --- | --- |" + " --- |" * N_OUT)
        for thr in BIAS_THRESHOLDS:
            for m in methods:
                vals = res.get("bias", {}).get(f"{m}@{thr:g}") or [None] * N_OUT
                cells = " | ".join(
                    "-" if v is None or not np.isfinite(v) else f"{v:.2f}" for v in vals
                )
                out.append(f"| {m} | {thr:g} | {cells} |")
        pods = res.get("pod", {})
        if any(
            v is not None and np.isfinite(v) for vals in pods.values() for v in vals
        ):
            out.append("\nProbability of detection (observed area forecast):\n")
            out.append(f"| method | dBZ | {leads} |")
            out.append("| --- | --- |" + " --- |" * N_OUT)
            for thr in POD_THRESHOLDS:
                for m in methods:
                    vals = pods.get(f"{m}@{thr:g}") or [None] * N_OUT
                    cells = " | ".join(
                        "-" if v is None or not np.isfinite(v) else f"{v:.2f}"
                        for v in vals
                    )
                    out.append(f"| {m} | {thr:g} | {cells} |")
    out.append("\n| method | seconds per forecast (median) |")
    out.append("| --- | --- |")
    for m in methods:
        out.append(f"| {m} | {results['seconds'][m]:.3f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", nargs="*", type=Path,
                    default=[SHARED / "radar-cases", SHARED / "radar-cases-more"])
    ap.add_argument("--cases", nargs="*", default=None, help="only these case names")
    ap.add_argument("--synthetic", type=int, default=20, help="sequences per regime")
    ap.add_argument("--levels", type=int, default=18)
    ap.add_argument("--size", type=int, default=250)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--model", action="append", default=[], metavar="NAME=CKPT",
                    help="also score this checkpoint as method NAME (repeatable)")
    ap.add_argument("--flow-only", action="append", default=[], metavar="NAME=CKPT",
                    help="also score this checkpoint without the storm-tracked prior "
                    "(the optical-flow prior alone, as in training)")
    ap.add_argument("--linda-synthetic", type=int, default=0, metavar="N",
                    help="score LINDA on the first N synthetic sequences of a regime")
    ap.add_argument("--seed0", type=int, default=1000,
                    help="first simulator seed of the synthetic sequences")
    ap.add_argument("--device", default="cpu", help="device of the models")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    forecasters = {m: get_forecaster(m) for m in methods}
    specs = [(s, True) for s in args.model] + [(s, False) for s in args.flow_only]
    for spec, prior in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            ap.error(f"--model/--flow-only {spec!r}: give NAME=CKPT")
        forecasters[name] = get_forecaster(
            "model", checkpoint=path, device=args.device, cell_prior=prior
        )
        forecasters[f"{name}-prior"] = get_forecaster(
            "model", checkpoint=path, device=args.device, cell_prior=prior,
            network=False,
        )
        methods += [name, f"{name}-prior"]
        fc = forecasters[name]
        if fc.spread_m_s or fc.head is not None or fc.trend_weight:
            # a fitted lead smoothing, head or trend: also the network's frames
            forecasters[f"{name}-unsmoothed"] = get_forecaster(
                "model", checkpoint=path, device=args.device, cell_prior=prior,
                smoothing=False, trend=False,
            )
            methods.append(f"{name}-unsmoothed")
    timings = defaultdict(list)
    results = {"machine": machine(), "groups": {}}
    overall = {m: ScoreAccumulator(COUNTED, 35.0, (5,)) for m in methods}
    n_all = 0
    family = defaultdict(lambda: ({m: ScoreAccumulator(COUNTED, 35.0, (5,))
                                   for m in methods}, [0]))
    for root in args.real:
        for case in sorted(p for p in root.iterdir() if p.is_dir()):
            if args.cases and case.name not in args.cases:
                continue
            t0 = time.perf_counter()
            seqs = case_sequences(case, resample=True)
            accs, n = score_group(seqs, methods, forecasters, timings)
            if n == 0:
                continue
            results["groups"][case.name] = csi_rows(accs, n)
            fam_accs, fam_n = family[case.name.split("-")[0]]
            for m in methods:
                overall[m].merge(accs[m])
                fam_accs[m].merge(accs[m])
            fam_n[0] += n
            n_all += n
            print(f"{case.name}: {n} sequences, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    for name, (accs, n) in sorted(family.items()):
        results["groups"][f"all {name}"] = csi_rows(accs, n[0])
    if n_all:
        results["groups"]["all real cases"] = csi_rows(overall, n_all)
    for regime in ("advection", "multicell", "supercell"):
        if args.synthetic <= 0:
            break
        t0 = time.perf_counter()
        seqs = synthetic_sequences(
            regime, args.synthetic, args.levels, args.size, args.seed0
        )
        limits = {"linda": args.linda_synthetic} if "linda" in methods else {}
        accs, n = score_group(seqs, methods, forecasters, timings, limits)
        results["groups"][f"synthetic {regime}"] = csi_rows(accs, n)
        print(f"synthetic {regime}: {n} sequences, {time.perf_counter() - t0:.0f} s",
              file=sys.stderr, flush=True)
    results["seconds"] = {
        m: float(np.median(timings[m])) if timings[m] else float("nan") for m in methods
    }
    text = markdown(results, methods)
    print(f"Machine: {results['machine']}")
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=_nan_none))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")


def _nan_none(value):
    return None


def machine() -> str:
    import torch

    return (f"{platform.platform()}, {os.cpu_count()} cores, torch {torch.__version__},"
            f" Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
