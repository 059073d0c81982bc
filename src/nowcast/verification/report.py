"""Plain-text tables of a :class:`~nowcast.verification.ScoreAccumulator`.

Contract
--------
:func:`format_scores` returns fixed-width text (no colour, no terminal needed) with
one block per kind (``3d`` voxels, ``composite`` column maximum) listing, per lead
and threshold, the counts and CSI / POD / FAR / bias, then one block with the FSS
of the composite per window and the MAE per kind. Undefined scores print as ``-``.
Scores have three decimals; leads print as ``+5 min`` (or ``+90 s``).
"""

from __future__ import annotations

import math

from nowcast.verification.accumulator import KINDS, ScoreAccumulator

_KIND_TITLES = {
    "3d": "3D voxels",
    "composite": "composite (column maximum)",
}


def format_lead(lead_s: int) -> str:
    """``+5 min`` for whole minutes, else ``+90 s``."""
    return f"+{lead_s // 60} min" if lead_s % 60 == 0 else f"+{lead_s} s"


def _score(value: float, width: int = 6) -> str:
    return f"{'-':>{width}}" if not math.isfinite(value) else f"{value:>{width}.3f}"


def _threshold(value: float) -> str:
    return f"{value:g}"


def format_scores(acc: ScoreAccumulator) -> str:
    """The accumulator's scores as text tables (see the module docstring)."""
    lines: list[str] = []
    header = (
        f"{'lead':>8} {'dBZ':>5} {'n':>5} {'hits':>10} {'misses':>10} "
        f"{'f.alarms':>10} {'CSI':>6} {'POD':>6} {'FAR':>6} {'bias':>6}"
    )
    rows = acc.table()
    for kind in KINDS:
        lines.append(
            f"Contingency scores, {_KIND_TITLES[kind]}; event = dBZ >= threshold"
        )
        lines.append(header)
        for row in rows:
            if row["kind"] != kind:
                continue
            lines.append(
                f"{format_lead(row['lead_s']):>8} {_threshold(row['threshold']):>5} "
                f"{row['forecasts']:>5} {row['hits']:>10} {row['misses']:>10} "
                f"{row['false_alarms']:>10} {_score(row['csi'])} {_score(row['pod'])} "
                f"{_score(row['far'])} {_score(row['bias'])}"
            )
        lines.append("")
    windows = acc.fss_windows
    lines.append(
        f"FSS of the composite at {_threshold(acc.fss_threshold)} dBZ by window "
        "(pixels), and MAE (dBZ)"
    )
    lines.append(
        f"{'lead':>8} {'n':>5} "
        + " ".join(f"{'w=' + str(w):>6}" for w in windows)
        + f" {'MAE 3D':>7} {'MAE comp':>8}"
    )
    for lead in acc.leads:
        lines.append(
            f"{format_lead(lead):>8} {acc.forecasts(lead):>5} "
            + " ".join(_score(acc.fss(lead, w)) for w in windows)
            + f" {_score(acc.mae(lead, '3d'), 7)}"
            + f" {_score(acc.mae(lead, 'composite'), 8)}"
        )
    return "\n".join(lines)
