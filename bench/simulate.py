"""Benchmark: simulate one 500 x 500 x 18 radar volume, per regime, on one core.

Run: ``python bench/simulate.py [--repeat 7] [--size 500] [--levels 18]``

For each regime (and ``mixed``) measures the median over ``--repeat`` runs of
- render: one more scan of an existing :class:`nowcast.synthetic.Simulator`
  (what a long feed or a training loop drawing consecutive frames pays per scan);
- new sequence: ``generate_sequence(regime, 1, ...)``: drawing a new scene and
  rendering its first scan (what drawing a fresh storm costs);
- training size: ``render`` at 250 x 250 x 18.
BLAS and OpenMP are held to one thread. Prints a markdown table and the machine.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from nowcast.synthetic import REGIMES, Simulator, generate_sequence  # noqa: E402


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(fn, repeat: int) -> float:
    fn()  # warm up (first-touch of memory, FFT plans)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--levels", type=int, default=18)
    args = ap.parse_args()
    n, nz = args.size, args.levels
    print(f"# Simulator: one {n} x {n} x {nz} scan (median of {args.repeat})\n")
    print(f"- machine: {platform.platform()}, {cpu_model()}, "
          f"{os.cpu_count()} CPUs (BLAS/OpenMP held to 1 thread)")
    print(f"- python {platform.python_version()}, numpy {np.__version__}\n")
    print(f"| regime | render one scan (s) | new sequence, 1 scan (s) "
          f"| render at {n // 2} x {n // 2} (s) |")
    print("| --- | ---: | ---: | ---: |")
    for regime in (*REGIMES, "mixed"):
        sim = Simulator(regime, 1000, seed=1, size=n, levels=nz)
        out = np.empty(sim.shape, np.float32)
        counter = iter(range(10**6))
        render = timed(lambda: sim.render(next(counter) % 1000, out=out), args.repeat)
        seeds = iter(range(10**6))
        fresh = timed(
            lambda: generate_sequence(regime, 1, seed=next(seeds), size=n, levels=nz),
            args.repeat,
        )
        small = Simulator(regime, 1000, seed=1, size=n // 2, levels=nz)
        out_small = np.empty(small.shape, np.float32)
        half = timed(
            lambda: small.render(next(counter) % 1000, out=out_small), args.repeat
        )
        print(f"| {regime} | {render:.3f} | {fresh:.3f} | {half:.3f} |")


if __name__ == "__main__":
    main()
