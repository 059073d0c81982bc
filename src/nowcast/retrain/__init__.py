"""nowcast.retrain: nightly retraining on the daemon's archive, with promotion.

Small modules, one job each (their docstrings hold the contracts):

- :mod:`.split`: the archive's older scans to train on, the newest
  ``retrain.heldout_days`` held out; links that show ``nowcast train`` only the
  former.
- :mod:`.child`: ``nowcast train --curriculum`` as a child process (log, timeout).
- :mod:`.heldout`: candidate and production scored on the held-out sequences
  (CSI 35 dBZ on the pooled grid's composite, the mean over leads).
- :mod:`.decide`: the promotion rule (``retrain.promotion_margin``).
- :mod:`.promote`: the atomic replacement of ``paths.production_model``, keeping
  ``NAME.previous.pt``.
- :mod:`.runner`: :func:`retrain`, the whole run (lock, niceness, record).

``nowcast retrain --now`` runs :func:`retrain`; the daemon's scheduler
(:mod:`nowcast.daemon.schedule`) runs that command every night. Nothing is read
or imported heavily at import time.
"""

from nowcast.retrain.decide import Decision, decide
from nowcast.retrain.promote import previous_path, promote
from nowcast.retrain.retraining import RetrainResult, retrain

__all__ = [
    "Decision",
    "RetrainResult",
    "decide",
    "previous_path",
    "promote",
    "retrain",
]
