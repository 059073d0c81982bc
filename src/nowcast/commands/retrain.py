"""``nowcast retrain --now``: the nightly retraining, by hand.

Trains the curriculum on the daemon's scan archive (``paths.archive_dir``) except
its newest ``retrain.heldout_days``, scores the new model and the production model
on those held-out days (CSI 35 dBZ, mean over the leads), and promotes the new one
(``paths.production_model`` replaced atomically; the old one kept as
``NAME.previous.pt``; a running daemon hot-reloads it) only when it is better by
``retrain.promotion_margin``. The decision and both scores go to the metrics store
(the monitor shows the last one) and to stdout as one line. See
:mod:`nowcast.retrain`.

- ``--candidate CKPT``: no training; score this checkpoint and promote it if better.
- ``--dry-run``: score and decide, but neither promote nor record.

Exit status 0 whether promoted or not; 1 when no decision could be made (no
archive, too few held-out sequences, the training child failed, another
retraining is running), with one line saying why; 78 for a configuration error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "retrain on the scan archive now; promote the new model only if it verifies better"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--now",
        action="store_true",
        help="train, score and decide now (what the daemon runs every night)",
    )
    p.add_argument(
        "--candidate",
        type=Path,
        metavar="CKPT",
        help="skip training: score this checkpoint against production (implies --now)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="decide, but neither promote nor record the decision",
    )


def run(args, settings) -> int:
    import sys

    from nowcast.retrain import retrain

    if not (args.now or args.candidate):
        print(
            "nowcast retrain: nothing to do: --now retrains now, --candidate CKPT "
            "scores a checkpoint",
            file=sys.stderr,
        )
        return 2
    result = retrain(settings, candidate=args.candidate, dry_run=args.dry_run)
    print(result.line(), flush=True)
    return 0
