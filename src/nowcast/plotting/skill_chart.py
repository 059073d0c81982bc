"""Skill by lead time, one line a method: ``nowcast plot skill``.

Contract
--------
- :class:`Curves` holds ``values[(label, kind, threshold)] = {lead_s: score}`` and
  the number of forecasts behind each point; ``score`` is one of
  :data:`SCORES` (``csi``, ``pod``, ``far``, ``bias``).
- :func:`curves_from_eval` reads ``nowcast eval --json`` reports: a report's label
  is its ``--method`` (else the methods it scored, joined by ``+``, else the file
  name); a report with the same label as another gets the file name added. A file
  that is missing, not JSON or not such a report is a
  :class:`~nowcast.plotting.PlotError` naming the file and the reason.
- :func:`curves_from_store` reads the metrics store (the daemon's verification of
  every method it ran) over ``since``/``until``, skill from summed counts
  (:meth:`~nowcast.store.reader.MetricsReader.skill`).
- :func:`skill_figure` draws one panel a threshold, lead in minutes on x, the
  score on y (0 to 1; bias around 1 with a dashed line at 1), one line a method in
  a fixed colour order (the model first when present), a legend, and the source
  and period in the title. No point to draw is a :class:`PlotError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.plotting import PlotError

SCORES = ("csi", "pod", "far", "bias")
_Key = tuple[str, str, float]  # (label, kind, threshold)
_FIRST = ("model", "prior", "linda", "anvil", "sprog", "extrapolation", "titan",
          "persistence")


@dataclass
class Curves:
    """Scores by (label, kind, threshold) and lead, and what they came from."""

    score: str
    values: dict[_Key, dict[int, float]] = field(default_factory=dict)
    forecasts: dict[_Key, dict[int, int]] = field(default_factory=dict)
    source: str = ""

    def add(self, label: str, row: dict[str, Any]) -> None:
        value = row.get(self.score)
        key = (label, str(row["kind"]), float(row["threshold"]))
        lead = int(row["lead_s"])
        self.values.setdefault(key, {})[lead] = (
            float("nan") if value is None else float(value)
        )
        self.forecasts.setdefault(key, {})[lead] = int(row.get("forecasts") or 0)

    @property
    def labels(self) -> list[str]:
        found = {key[0] for key in self.values}
        first = [name for name in _FIRST if name in found]
        return first + sorted(found - set(first))

    def thresholds(self, kind: str) -> list[float]:
        return sorted({key[2] for key in self.values if key[1] == kind})


def _check_score(score: str) -> str:
    if score not in SCORES:
        raise PlotError(f"score {score!r}: one of {', '.join(SCORES)}")
    return score


def _label(report: dict[str, Any], path: Path) -> str:
    if report.get("method"):
        return str(report["method"])
    methods = report.get("methods") or {}
    return "+".join(sorted(methods)) if methods else path.stem


def curves_from_eval(paths: Sequence[str | Path], score: str = "csi") -> Curves:
    """Curves of ``nowcast eval --json`` reports (see the module contract)."""
    curves = Curves(_check_score(score), source="nowcast eval")
    taken: set[str] = set()
    for path in map(Path, paths):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            rows = report["scores"]["table"]
            if not isinstance(rows, list):
                raise TypeError("scores.table is not a list")
        except FileNotFoundError:
            raise PlotError(f"{path}: no such file") from None
        except (OSError, ValueError) as exc:
            raise PlotError(f"{path}: not a JSON report ({exc})") from None
        except (KeyError, TypeError) as exc:
            raise PlotError(
                f"{path}: not a nowcast eval --json report (no scores table: {exc})"
            ) from None
        label = _label(report, path)
        if label in taken:
            label = f"{label} ({path.stem})"
        taken.add(label)
        try:
            for row in rows:
                curves.add(label, row)
        except (KeyError, TypeError, ValueError) as exc:
            raise PlotError(f"{path}: a score row is malformed ({exc})") from None
    return curves


def curves_from_store(
    store: str | Path, since: Any = None, until: Any = None, score: str = "csi"
) -> Curves:
    """Curves of every method the daemon verified over the period."""
    from nowcast.store import MetricsReader, StoreError

    curves = Curves(_check_score(score), source=f"metrics store {Path(store).name}")
    try:
        with MetricsReader(store) as reader:
            rows = reader.skill(since=since, until=until)
    except StoreError as exc:
        raise PlotError(str(exc)) from None
    for row in rows:
        curves.add(str(row["method"]), row)
    return curves


def _colours(labels: Iterable[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def skill_figure(
    curves: Curves,
    *,
    kind: str = "composite",
    thresholds: Sequence[float] | None = None,
    title: str = "",
) -> Any:
    """The chart (see the module contract); matplotlib's object API, no pyplot."""
    from nowcast.plotting import require_matplotlib

    require_matplotlib()
    from matplotlib.figure import Figure

    available = curves.thresholds(kind)
    chosen = available if thresholds is None else [
        float(t) for t in thresholds if float(t) in available
    ]
    if not chosen:
        have = ", ".join(f"{t:g}" for t in available) or "none"
        kinds = sorted({key[1] for key in curves.values}) or ["none"]
        raise PlotError(
            f"no {curves.score.upper()} to draw for {kind} at "
            f"{', '.join(f'{t:g}' for t in thresholds or []) or 'any threshold'} dBZ "
            f"(thresholds there: {have}; kinds: {', '.join(kinds)})"
        )
    labels = curves.labels
    colours = _colours(labels)
    figure = Figure(figsize=(4.2 * len(chosen) + 0.4, 3.6), layout="constrained")
    axes = figure.subplots(1, len(chosen), squeeze=False)[0]
    for ax, threshold in zip(axes, chosen):
        for label in labels:
            series = curves.values.get((label, kind, threshold))
            if not series:
                continue
            leads = sorted(series)
            ax.plot(
                np.asarray(leads) / 60.0, [series[lead] for lead in leads],
                marker="o", markersize=3.5, linewidth=1.6 if label != "model" else 2.4,
                color=colours[label], label=label,
            )
        score = curves.score.upper()
        ax.set_title(f"{score} {kind} >= {threshold:g} dBZ", fontsize=10)
        ax.set_xlabel("lead time (min)")
        ax.set_ylabel(score)
        if curves.score == "bias":
            ax.axhline(1.0, color="#888888", linestyle="--", linewidth=1)
        else:
            ax.set_ylim(0.0, 1.0)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    figure.suptitle(title or f"Skill by lead time ({curves.source})", fontsize=10)
    return figure
