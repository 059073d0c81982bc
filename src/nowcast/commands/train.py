"""``nowcast train``: the three-phase curriculum, one phase or all of them.

Examples (the strategy's commands)::

    nowcast train --phase 1 --batch-size 32
    nowcast train --phase 2 --resume-from checkpoints/phase1_best.pt
    nowcast train --phase 3 --resume-from checkpoints/phase2_best.pt
    nowcast train --curriculum
    torchrun --nproc-per-node 4 -m nowcast train --curriculum

A phase writes ``phase{N}_best.pt`` and ``phase{N}_last.pt`` under ``--out``
(``paths.checkpoints_dir``); a run killed mid-phase goes on with
``--resume-from .../phase{N}_last.pt``. Every default comes from the config
(``[curriculum]``, ``[model]``, ``[grid]``, ``[synthetic]``). Progress goes to
stderr (a bar on a terminal, one JSON line an epoch otherwise); the summary (one
line a phase: best epoch, CSI 35 dBZ of the model against extrapolation and
persistence) goes to stdout. Exit status 0 when the phases ran to their end, 3
when stopped early by ``--stop-after``, 1 on an error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HELP = "train the ConvLSTM3D model through the three-phase curriculum"


def add_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--phase", type=int, choices=(1, 2, 3), help="the phase to run (default 1)"
    )
    which.add_argument(
        "--curriculum", action="store_true", help="run phases 1, 2 and 3 in order"
    )
    p.add_argument(
        "--resume-from",
        type=Path,
        metavar="CKPT",
        help="a phase's _last (go on) or a finished phase's _best (start the next)",
    )
    p.add_argument(
        "--batch-size", type=int, metavar="N", help="default: curriculum.batch_size"
    )
    p.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="epochs a phase instead of the config's (short runs)",
    )
    p.add_argument(
        "--data",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="scan archives to train on (default: curriculum.data_dirs)",
    )
    p.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="simulated storms an epoch (default: curriculum.synthetic_per_epoch)",
    )
    p.add_argument(
        "--sequences",
        type=int,
        metavar="N",
        help="archive samples an epoch (default: curriculum.sequences)",
    )
    p.add_argument(
        "--holdout",
        nargs="+",
        default=[],
        metavar="CASE",
        help="archive cases (or a whole data dir by its name) kept out of training, "
        "scored at the end of each phase",
    )
    p.add_argument(
        "--validate",
        nargs="+",
        default=[],
        metavar="CASE",
        help="archive cases (or a whole data dir by its name) to validate on, "
        "whole, in place of --split (e.g. many convective windows); every other "
        "case but the held-out ones is trained on",
    )
    p.add_argument(
        "--split",
        choices=("tail", "blocks", "cases"),
        help="validation time blocks: the tail of each case (default), blocks "
        "within each case, or whole cases (short cases lose no windows)",
    )
    p.add_argument(
        "--size",
        type=int,
        metavar="N",
        help="train on N x N grids: archive crops, simulated storms of that size",
    )
    p.add_argument(
        "--levels",
        type=int,
        metavar="N",
        help="levels of the simulated storms (default: synthetic.levels)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: CUDA when there is a GPU",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="checkpoints folder (default: paths.checkpoints_dir)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="archive cache (default: paths.state_dir/train_cache)",
    )
    p.add_argument(
        "--cache-only",
        action="store_true",
        help="train on the archive cache as it is, without --data (a machine that "
        "has the cache but not the scans)",
    )
    p.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="also write the last phase's best model here (e.g. models/demo3d.pt)",
    )
    p.add_argument("--seed", type=int, help="default: curriculum.seed")
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads (default: all cores; 1 on a CPU shared with "
        "other busy processes)",
    )
    p.add_argument(
        "--stop-after", type=int, metavar="N", help=argparse.SUPPRESS
    )  # test hook: stop after N epochs of this call, as if killed


def _check(args) -> str | None:
    names = ("batch_size", "epochs", "size", "levels", "sequences", "stop_after")
    for name in (*names, "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be >= 1"
    if args.synthetic is not None and args.synthetic < 0:
        return "--synthetic must be >= 0"
    if args.size is not None and args.size < 16:
        return "--size must be >= 16 (the simulator's smallest grid)"
    if args.cache_only and args.data:
        return "--cache-only trains on the cache as it is: leave out --data"
    if args.resume_from is not None and not args.resume_from.is_file():
        return f"--resume-from {args.resume_from}: no such file"
    return None


def run(args, settings) -> int:
    from nowcast.curriculum.loaders import spec_from
    from nowcast.curriculum.training import TrainRequest, train

    problem = _check(args)
    if problem:
        print(f"nowcast train: error: {problem}", file=sys.stderr)
        return 2
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if args.seed is not None:
        cur = settings.curriculum.model_copy(update={"seed": args.seed})
        settings = settings.model_copy(update={"curriculum": cur})
    spec = spec_from(
        settings,
        data_dirs=args.data,
        synthetic=args.synthetic,
        holdout=args.holdout or None,
        validate=args.validate or None,
        size=args.size,
        levels=args.levels,
        sequences=args.sequences,
        batch_size=args.batch_size,
        cache_dir=args.cache,
        split=args.split,
        cache_only=args.cache_only or None,
    )
    request = TrainRequest(
        phases=[1, 2, 3] if args.curriculum else [args.phase or 1],
        data=spec,
        out_dir=args.out or settings.paths.checkpoints_dir,
        resume_from=args.resume_from,
        epochs=args.epochs,
        device=args.device,
        export=args.export,
        command=shlex.join(["nowcast", *getattr(args, "argv", sys.argv[1:])]),
        stop_after=args.stop_after,
    )
    summary = train(settings, request)
    if summary.is_main:
        for line in summary.lines():
            print(line, flush=True)
    return 3 if summary.interrupted else 0
