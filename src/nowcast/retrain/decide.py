"""The promotion rule: the candidate must beat production on the held-out days.

Contract
--------
:func:`decide` ``(candidate, production, margin, min_sequences)`` with the two
:class:`~nowcast.retrain.heldout.Skill` s of one scoring returns a
:class:`Decision`, never raises. The candidate is promoted only when every
condition holds, checked in this order (the first that fails is the reason):

1. the candidate ran on every held-out sequence (no error);
2. at least ``min_sequences`` (``retrain.min_heldout_sequences``) sequences were
   scored;
3. the held-out days hold observed echo at or above 35 dBZ (else neither score
   says anything);
4. both scores are defined, and ``candidate > production + margin``
   (``retrain.promotion_margin``; CSI 35 dBZ, mean over leads).

``Decision.reason`` is one line that names the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nowcast.retrain.heldout import THRESHOLD_DBZ


@dataclass(frozen=True)
class Decision:
    """Promote or keep, the two scores and why."""

    promote: bool
    reason: str
    candidate_score: float | None
    production_score: float | None
    margin: float


def _finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def decide(
    candidate: Any, production: Any, margin: float, min_sequences: int
) -> Decision:
    """Apply the promotion rule (see the module contract)."""
    cand, prod = _finite(candidate.score), _finite(production.score)

    def keep(reason: str) -> Decision:
        return Decision(False, reason, cand, prod, float(margin))

    if candidate.error is not None:
        return keep(f"the candidate failed: {candidate.error}")
    n = candidate.sequences
    if n < min_sequences:
        return keep(
            f"only {n} held-out sequences scored, fewer than "
            f"retrain.min_heldout_sequences = {min_sequences}"
        )
    if candidate.observed_events == 0:
        return keep(
            f"no echo >= {THRESHOLD_DBZ:g} dBZ in the held-out days: nothing to "
            "compare the models on"
        )
    if cand is None or prod is None:
        return keep("a score is undefined on the held-out days")
    scores = f"candidate CSI{THRESHOLD_DBZ:g} {cand:.4f} {{}} production {prod:.4f}"
    where = f" + margin {margin:g} ({n} held-out sequences)"
    if cand > prod + margin:
        return Decision(True, scores.format(">") + where, cand, prod, float(margin))
    return keep(scores.format("<=") + where)
