"""Forecast latency of the ConvLSTM3D: one forecast at 250 x 250 x 18.

Run::

    python bench/infer.py                          # default [model], device auto
    python bench/infer.py --checkpoint models/demo3d.pt --repeats 5 --json out.json

Times (median of ``--repeats`` after one warm-up):

- ``forecaster``: one :class:`nowcast.forecasters.model.ModelForecaster` forecast,
  what the daemon calls: optical flow (pysteps Lucas-Kanade on the CPU), the
  network, dBZ conversion, copies to and from the device;
- ``flow``: the optical-flow part of it alone;
- ``net``: the raw network, one ``(1, 8, 18, 250, 250)`` forward on the device
  (bf16 autocast on CUDA), input already there.

Peak memory: the device's (``torch.cuda.max_memory_allocated``) on CUDA, the
process' maximum resident size on the CPU. Without ``--checkpoint`` an untrained
network of the ``[model]`` defaults is saved to a temporary checkpoint (latency
does not depend on the weights). Needs only torch and numpy; without pysteps the
flow prior is zeros and ``flow`` is reported as missing. Targets: under 30 s on a
2-core CPU, under 0.2 s on an H200.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

#: the ``[model]`` defaults of config.toml (kept here so the bench needs no pydantic)
DEFAULT_NET = dict(
    hidden_channels=(32, 32),
    kernel_size=(3, 3, 3),
    stem_channels=16,
    stem_strides=((1, 2, 2), (1, 2, 2)),
    groups=4,
    head="advection",
    flow_input=True,
)


def moving_cells(size: int, levels: int, n: int = 8) -> np.ndarray:
    """``(n, levels, size, size)`` dBZ: a few cells moving 2 px a step."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.2 * size, 0.7 * size, (6, 2))
    out = np.zeros((n, levels, size, size), np.float32)
    for t in range(n):
        field = np.zeros((size, size), np.float32)
        for cy, cx in centres:
            r2 = (xx - cx - 2.0 * t) ** 2 + (yy - cy - 1.0 * t) ** 2
            field = np.maximum(field, 55.0 * np.exp(-r2 / (2 * 6.0**2)))
        for z in range(levels):
            out[t, z] = field * max(0.0, 1.0 - z / max(levels, 1))
    return out


def save_untrained(path: Path, levels: int) -> Path:
    from nowcast.model.checkpoint import save_checkpoint
    from nowcast.model import build_network

    torch.manual_seed(0)
    net = build_network(**DEFAULT_NET)
    state = {
        "model": net.state_dict(),
        "init_kwargs": net.init_kwargs,
        "phase": 0,
        "epoch": -1,
        "data": {"levels": [levels], "dbz_min": 0.0, "dbz_max": 70.0},
    }
    return save_checkpoint(path, state)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median(fn, repeats: int, device: str) -> tuple[float, list[float]]:
    fn()  # warm-up (cudnn benchmark, allocator, lazy imports)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, help="default: untrained [model]")
    p.add_argument("--size", type=int, default=250)
    p.add_argument("--levels", type=int, default=18)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)

    from nowcast.errors import ForecasterError
    from nowcast.forecasters.model import ModelForecaster

    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    tmp = tempfile.TemporaryDirectory()
    ckpt = args.checkpoint or save_untrained(Path(tmp.name) / "bench.pt", args.levels)
    fc = ModelForecaster(ckpt, device=args.device, any_levels=True)
    device = fc.device
    frames = moving_cells(args.size, args.levels)
    t0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
    times = [t0 + timedelta(minutes=5 * k) for k in range(len(frames))]
    flow_note = "pysteps Lucas-Kanade"
    try:
        fc._flow(frames)
    except ForecasterError as exc:
        flow_note = f"missing ({exc}); zeros used"
        fc._flow = lambda past: np.zeros((2, *past.shape[-2:]), np.float32)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    forecast_s, all_fc = _median(
        lambda: fc.forecast(frames, times, 7, dx_m=2000.0), args.repeats, device
    )
    flow_s, _ = _median(lambda: fc._flow(frames), args.repeats, "cpu")

    from nowcast.model import to_unit

    x = torch.from_numpy(to_unit(frames))[None].to(device)
    flow = torch.zeros(1, 2, args.size, args.size, device=device)

    def raw():
        with torch.inference_mode():
            if fc.bf16:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    return fc.net(x, flow if fc.net.flow_input else None)
            return fc.net(x, flow if fc.net.flow_input else None)

    net_s, _ = _median(raw, args.repeats, device)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
        name = torch.cuda.get_device_name()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        name = f"CPU, {torch.get_num_threads()} torch threads"
    result = {
        "device": device,
        "device_name": name,
        "grid": [args.levels, args.size, args.size],
        "checkpoint": str(args.checkpoint or "untrained [model] defaults"),
        "params": sum(p.numel() for p in fc.net.parameters()),
        "bf16": fc.bf16,
        "forecaster_s": round(forecast_s, 4),
        "forecaster_runs_s": [round(t, 4) for t in all_fc],
        "flow_s": round(flow_s, 4),
        "flow": flow_note,
        "net_s": round(net_s, 4),
        "peak_memory_gib": round(peak, 3),
        "torch": torch.__version__,
    }
    print(
        f"{name}: one forecast {args.levels}x{args.size}x{args.size}: "
        f"{forecast_s:.3f} s through ModelForecaster (flow {flow_s:.3f} s, "
        f"{flow_note}), raw net {net_s:.3f} s; peak memory {peak:.2f} GiB"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
