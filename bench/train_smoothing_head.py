"""Train a checkpoint's smoothing head on verification windows.

Run (as measured on ``models/real2d.pt``: BENCHMARKS.md, "The smoothing head";
it tied the fit on the held-out cases and is not shipped)::

    python bench/train_smoothing_head.py --model models/real2d.pt \
        --real ../shared/data/radar-cases-steps ../shared/data/radar-cases-more \
        --train bom2,bom66,knmi --validate mrms --epochs 6 \
        --cache bench/out/head-cache.pt --out checkpoints/real2d-head.pt

The model forecaster (storm-tracked prior, as in the daemon) runs unsmoothed on
every window of the case folders whose family (the name before the first ``-``)
is in ``--train`` or ``--validate`` (pooled 2 x 2, other steps resampled as in
``bench/skill.py``); each forecast's bank of smoothed versions
(:func:`nowcast.forecasters.smoothing_head.smoothing_bank`) is computed once.
The head (:class:`~nowcast.forecasters.smoothing_head.SmoothingHead`), started
from the checkpoint's lead smoothing fit, is trained with Adam on random
``--crop`` crops of the training windows, all leads a step, on the soft CSI at
20 and 35 dBZ; after every epoch the validation windows are scored (CSI of
summed counts, whole grids, mean of 20 and 35 dBZ over the leads) and the best
epoch is kept, with the fit's own score (the start) as the bar: a head that
never beats it is not written. ``--cache`` keeps the banks between runs.
Validate on cases the skill table does not score (``radar-cases`` and the
storms outside ``../shared`` are the test).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from skill import N_IN, N_OUT, case_sequences

from nowcast.forecasters import get_forecaster
from nowcast.forecasters.smoothing_head import (
    BANK_M_S,
    SmoothingHead,
    csi_of_counts,
    head_state,
    smoothing_bank,
    soft_counts,
)
from nowcast.model.checkpoint import load_checkpoint, save_checkpoint
from nowcast.verification import contingency

THRESHOLDS = (20.0, 35.0)


def families(value: str) -> list[str]:
    return [f for f in value.split(",") if f]


def collect(args, wanted: set[str], bank_m_s, mode, floor):
    """``[(family, bank (b, t, z, y, x) f16, observed (t, z, y, x) f16), ...]``."""
    forecaster = get_forecaster(
        "model", checkpoint=args.model, device=args.device, smoothing=False
    )
    out, taken = [], {}
    for root in args.real:
        for case in sorted(p for p in root.iterdir() if p.is_dir()):
            family = case.name.split("-")[0]
            if family not in wanted or taken.get(family, 0) >= args.limit:
                continue
            n = 0
            for frames, times, dx in case_sequences(case, resample=True):
                if not forecaster.runs_on(frames.shape[1]):
                    continue
                if taken.get(family, 0) >= args.limit:
                    break
                taken[family] = taken.get(family, 0) + 1
                step = (times[1] - times[0]).total_seconds()
                result = forecaster.forecast(
                    frames[:N_IN], times[:N_IN], N_OUT, dx_m=dx, interval_s=step
                )
                bank = smoothing_bank(result.dbz, bank_m_s, dx, step, floor, mode)
                out.append(
                    (
                        family,
                        bank.astype(np.float16),
                        frames[N_IN:].astype(np.float16),
                    )
                )
                n += 1
            print(f"{case.name}: {n} windows", file=sys.stderr, flush=True)
    return out


def weights_id(state) -> str:
    """The same weights (whatever smoothing they carry) give the same banks."""
    return f"{state.get('run_id')}:{state.get('phase')}:{state.get('epoch')}"


def as_samples(bank: np.ndarray, observed: np.ndarray, floor: float):
    """(b, t, z, y, x) -> (t*z, b, y, x) tensors, the leads, the observation."""
    b, t = bank.shape[:2]
    spatial = bank.shape[-2:]
    x = np.moveaxis(bank.reshape(b, t, -1, *spatial), 0, 2).reshape(-1, b, *spatial)
    obs = observed.reshape(-1, *spatial).astype(np.float32)
    lead = np.repeat(np.arange(t), x.shape[0] // t)
    valid = np.isfinite(obs) & np.isfinite(x[:, 0])
    x = np.nan_to_num(x.astype(np.float32), nan=floor)
    return (
        torch.from_numpy(x),
        torch.from_numpy(lead),
        torch.from_numpy(np.nan_to_num(obs, nan=-99.0)),
        torch.from_numpy(valid.astype(np.float32)),
    )


def crop(window, size, rng, floor):
    """A random ``size`` crop of a window's samples, flipped half the time."""
    _, bank, observed = window
    x, lead, obs, valid = as_samples(bank, observed, floor)
    h, w = x.shape[-2:]
    if size and h > size and w > size:
        y0 = int(rng.integers(0, h - size + 1))
        x0 = int(rng.integers(0, w - size + 1))
        sl = (..., slice(y0, y0 + size), slice(x0, x0 + size))
        x, obs, valid = x[sl], obs[sl], valid[sl]
    if rng.random() < 0.5:
        x, obs, valid = x.flip(-1), obs.flip(-1), valid.flip(-1)
    return x, lead, obs, valid


def score(head, windows, floor, n_leads):
    """Mean CSI (20, 35) per lead of the head on ``windows``, summed counts."""
    counts = [None] * n_leads
    head.eval()
    with torch.inference_mode():
        for _, bank, observed in windows:
            x, lead, obs, valid = as_samples(bank, observed, floor)
            f = head(x, lead).numpy()
            f = np.where(valid.numpy() > 0, f, np.nan)
            o = np.where(valid.numpy() > 0, obs.numpy(), np.nan)
            t = bank.shape[1]
            f = f.reshape(t, -1, *f.shape[-2:]).max(axis=1)
            o = o.reshape(t, -1, *o.shape[-2:]).max(axis=1)
            for k in range(min(t, n_leads)):
                c = contingency(f[k], o[k], THRESHOLDS)
                counts[k] = (
                    c
                    if counts[k] is None
                    else {v: counts[k][v] + c[v] for v in THRESHOLDS}
                )
    return [{v: counts[k][v].csi for v in THRESHOLDS} for k in range(n_leads)]


def mean_csi(per_lead) -> float:
    return float(np.nanmean([[row[v] for v in THRESHOLDS] for row in per_lead]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--real", nargs="*", type=Path, default=[])
    ap.add_argument("--train", type=families, required=True)
    ap.add_argument("--validate", type=families, required=True)
    ap.add_argument("--bank", default=",".join(f"{v:g}" for v in BANK_M_S))
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--dilations", default="1,2,4,8")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--batch", type=int, default=4, help="windows a step")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument(
        "--start-strength",
        type=float,
        default=3.0,
        help="the fit's logit lead at the start",
    )
    ap.add_argument("--width-db", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=10**9, help="windows a family")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    state = load_checkpoint(args.model, map_location="cpu")
    fit = state.get("lead_smoothing") or {}
    mode = str(fit.get("mode", "max"))
    floor = 0.0
    bank_m_s = [float(v) for v in args.bank.split(",") if v]
    t0 = time.perf_counter()
    wanted = set(args.train) | set(args.validate)
    if args.cache and args.cache.is_file():
        blob = torch.load(args.cache, weights_only=False)
        if blob["bank_m_s"] != bank_m_s or blob["weights"] != weights_id(state):
            raise SystemExit(f"{args.cache} was made for other weights or bank")
        windows = [w for w in blob["windows"] if w[0] in wanted]
    else:
        windows = collect(args, wanted, bank_m_s, mode, floor)
        if args.cache:
            torch.save(
                {
                    "bank_m_s": bank_m_s,
                    "weights": weights_id(state),
                    "windows": windows,
                },
                args.cache,
            )
    train = [w for w in windows if w[0] in args.train]
    val = [w for w in windows if w[0] in args.validate]
    if not train or not val:
        raise SystemExit(f"{len(train)} training and {len(val)} validation windows")
    n_leads = windows[0][1].shape[1]
    print(
        f"{len(train)} training, {len(val)} validation windows, "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    head = SmoothingHead(
        len(bank_m_s),
        n_leads,
        hidden=args.hidden,
        dilations=[int(d) for d in args.dilations.split(",")],
    )
    head.start_from(fit.get("spread_m_s") or [], bank_m_s)
    start = score(head, val, floor, n_leads)  # the fit itself: the bar
    best, best_state, best_epoch = mean_csi(start), None, None
    print(f"the fit: validation {best:.4f}", flush=True)
    head.start_from(fit.get("spread_m_s") or [], bank_m_s, args.start_strength)
    print(
        f"start: validation {mean_csi(score(head, val, floor, n_leads)):.4f}",
        flush=True,
    )
    opt = torch.optim.Adam(head.parameters(), lr=args.lr)
    history = []
    for epoch in range(args.epochs):
        head.train()
        losses = []
        order = rng.permutation(len(train))
        for b0 in range(0, len(order), args.batch):
            # the CSI of the batch's summed soft counts, per lead and threshold;
            # its gradient taken window by window through the counts' linear
            # part (exact: d CSI = dCSI/dcounts . d counts), so that a batch
            # needs the memory of one window
            batch = [
                crop(train[i], args.crop, rng, floor)
                for i in order[b0 : b0 + args.batch]
            ]
            with torch.no_grad():
                total = sum(
                    soft_counts(
                        head(x, lead),
                        obs,
                        lead,
                        n_leads,
                        THRESHOLDS,
                        args.width_db,
                        valid,
                    )
                    for x, lead, obs, valid in batch
                )
            total.requires_grad_(True)
            loss = 1.0 - csi_of_counts(total).mean()
            (grad,) = torch.autograd.grad(loss, total)
            opt.zero_grad()
            for x, lead, obs, valid in batch:
                counts = soft_counts(
                    head(x, lead), obs, lead, n_leads, THRESHOLDS, args.width_db, valid
                )
                (counts * grad).sum().backward()
            opt.step()
            losses.append(loss.item())
        now = score(head, val, floor, n_leads)
        history.append(
            {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                "validation": mean_csi(now),
            }
        )
        mark = ""
        if mean_csi(now) > best:
            best, best_state, best_epoch = (
                mean_csi(now),
                copy.deepcopy(head.state_dict()),
                epoch,
            )
            mark = " *"
        print(
            f"epoch {epoch}: loss {np.mean(losses):.4f} validation "
            f"{mean_csi(now):.4f}{mark} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    seconds = time.perf_counter() - t0
    if best_state is None:
        print("the head never beat the fit on validation: nothing written")
        return
    head.load_state_dict(best_state)
    final = score(head, val, floor, n_leads)
    print(
        "| lead | " + " | ".join(f"fit {v:g} | head {v:g}" for v in THRESHOLDS) + " |"
    )
    print("| --- " * (1 + 2 * len(THRESHOLDS)) + "|")
    for k in range(n_leads):
        cells = " | ".join(f"{start[k][v]:.3f} | {final[k][v]:.3f}" for v in THRESHOLDS)
        print(f"| t+{k + 1} | {cells} |")
    if args.out is None:
        return
    state["smoothing_head"] = head_state(
        head,
        bank_m_s,
        mode,
        trained_on=sorted(args.train),
        validated_on=sorted(args.validate),
        windows={"train": len(train), "validate": len(val)},
        epoch=best_epoch,
        validation={"fit": start, "head": final},
        history=history,
        command="python bench/train_smoothing_head.py " + " ".join(sys.argv[1:]),
        seconds=round(seconds, 1),
    )
    save_checkpoint(args.out, state)
    print(f"wrote {args.out} (epoch {best_epoch}, validation {best:.4f})")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
