"""Training throughput of the ConvLSTM3D: samples/s, peak memory, FLOPs/sample.

Run::

    python bench/train.py                                  # CUDA: 250x250x18, b 16, 32
    python bench/train.py --batch-sizes 32 --checkpointing --json out.json
    python bench/train.py --cpu-small                      # the CPU: a reduced case

One training step is what :class:`nowcast.curriculum.trainer.PhaseTrainer` does:
forward (bf16 autocast on CUDA unless ``--no-bf16``; the cell state, the warp and
the loss stay float32; channels-last 3D weights unless ``--no-channels-last``),
:class:`~nowcast.curriculum.losses.CombinedLoss` with phase-2 weights over a
mask, backward, AdamW (fused on CUDA). Inputs are random
tensors already on the device (the data pipeline is not measured).

Reported per batch size: ``samples_per_s`` (median step time over ``--steps``
after ``--warmup`` steps), ``peak_memory_gib`` (``torch.cuda.max_memory_allocated``;
resident size on the CPU), ``flops_per_sample`` (forward + backward, counted by
``torch.utils.flop_counter.FlopCounterMode`` on one sample: convolutions and
matrix products, the bulk of it), ``tflops`` achieved and, on CUDA,
``peak_fraction`` of ``--peak-tflops`` (the H200's dense bf16 peak, 989 TFLOP/s;
about 790 is what a large bf16 matrix product reaches there).

On the CPU the full size takes minutes a step: ``--cpu-small`` runs 64 x 64 x 4,
batch 2, and says so in the output.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

H200_BF16_DENSE_TFLOPS = 989.0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_step(net, loss, opt, device: str, bf16: bool):
    def step(x, flow, y, mask):
        ctx = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if bf16
            else torch.autocast("cpu", enabled=False)
        )
        with ctx:
            out = net(x, flow)
        total = loss(out.frames, y, mask)["total"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        return total

    return step


def batch(b: int, levels: int, size: int, device: str):
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(b, 8, levels, size, size, generator=g).to(device)
    y = torch.rand(b, 7, levels, size, size, generator=g).to(device)
    flow = (torch.rand(b, 2, size, size, generator=g) * 4 - 2).to(device)
    mask = torch.ones_like(y)
    return x, flow, y, mask


def flops_per_sample(net, loss, levels: int, size: int, device: str, bf16: bool):
    from torch.utils.flop_counter import FlopCounterMode

    x, flow, y, mask = batch(1, levels, size, device)
    counter = FlopCounterMode(display=False)
    with counter:
        ctx = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if bf16
            else torch.autocast("cpu", enabled=False)
        )
        with ctx:
            out = net(x, flow)
        loss(out.frames, y, mask)["total"].backward()
    net.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bench_one(args, b: int, device: str) -> dict:
    from infer import DEFAULT_NET

    from nowcast.curriculum.losses import CombinedLoss
    from nowcast.model import build_network

    bf16 = device.startswith("cuda") and not args.no_bf16
    torch.manual_seed(0)
    net = build_network(**DEFAULT_NET, checkpoint_steps=args.checkpointing).to(device)
    if not args.no_channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    loss = CombinedLoss(50.0, 20.0, 40.0 / 70.0, 0.1)
    flops = flops_per_sample(net, loss, args.levels, args.size, device, bf16)
    if args.compile:  # after counting: the counter does not see into compiled code
        net.compile_cells()
    kw = {"fused": True} if device.startswith("cuda") else {}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, **kw)
    step = make_step(net, loss, opt, device, bf16)
    data = batch(b, args.levels, args.size, device)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        for _ in range(args.warmup):
            step(*data)
        _sync(device)
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step(*data)
            _sync(device)
            times.append(time.perf_counter() - t0)
    except torch.OutOfMemoryError as exc:
        return {"batch": b, "error": f"out of memory: {str(exc).splitlines()[0]}"}
    dt = statistics.median(times)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    sps = b / dt
    tflops = flops * sps / 1e12
    row = {
        "batch": b,
        "grid": [args.levels, args.size, args.size],
        "bf16": bf16,
        "checkpointing": args.checkpointing,
        "compile": args.compile,
        "channels_last": not args.no_channels_last,
        "step_s": round(dt, 4),
        "samples_per_s": round(sps, 3),
        "peak_memory_gib": round(peak, 2),
        "flops_per_sample": flops,
        "tflops": round(tflops, 3),
    }
    if device.startswith("cuda"):
        row["peak_fraction"] = round(tflops / args.peak_tflops, 4)
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    p.add_argument("--size", type=int, default=250)
    p.add_argument("--levels", type=int, default=18)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-bf16", action="store_true", help="float32 on CUDA too")
    p.add_argument("--checkpointing", action="store_true", help="per time step")
    p.add_argument("--compile", action="store_true", help="torch.compile the cells")
    p.add_argument(
        "--no-channels-last",
        action="store_true",
        help="NCDHW weights (the trainer's curriculum.channels_last = false)",
    )
    p.add_argument("--cpu-small", action="store_true", help="64x64x4, batch 2")
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS)
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    note = ""
    if device == "cpu" and args.cpu_small:
        args.size, args.levels, args.batch_sizes = 64, 4, [2]
        note = " (reduced CPU case, not the full size)"
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name()
    else:
        name = f"CPU, {torch.get_num_threads()} torch threads"
    rows = []
    for b in args.batch_sizes:
        row = {"device": name, **bench_one(args, b, device)}
        rows.append(row)
        if args.json:  # after every row: a run cut by a time limit keeps its rows
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(rows, indent=1))
        if "error" in row:
            print(f"{name}: batch {b}: {row['error']}", flush=True)
            continue
        frac = f", {row['peak_fraction']:.1%} of peak" if "peak_fraction" in row else ""
        print(
            f"{name}: {args.levels}x{args.size}x{args.size} batch {b}{note}: "
            f"{row['samples_per_s']:.2f} samples/s ({row['step_s']:.3f} s/step), "
            f"peak {row['peak_memory_gib']:.2f} GiB, "
            f"{row['flops_per_sample'] / 1e9:.1f} GFLOP/sample, "
            f"{row['tflops']:.2f} TFLOP/s{frac} "
            f"[bf16={row['bf16']} ckpt={row['checkpointing']} "
            f"compile={row['compile']}]",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
