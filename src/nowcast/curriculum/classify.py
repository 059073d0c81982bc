"""The regime of a real sequence: advection, multicell or supercell, by rule.

The simulator knows each storm's regime; archived radar sequences do not, so they
are classed by this documented rule, computed on the **input frames only** (the
8 frames the model sees, never the future it must predict).

The rule (:class:`RegimeRule`, every threshold an argument)
-----------------------------------------------------------
On each input frame, on the column maximum ``C`` (NaN, no coverage, is left out
of the fractions and counts as no echo for cells), with pixel areas in km² from
the grid spacing (so that the 240 m and the 2 km grids agree):

- *echo*: pixels with ``C >= echo_dbz`` (20 dBZ);
- *cells*: 8-connected regions with ``C >= cell_dbz`` (35 dBZ) of at least
  ``min_cell_km2`` (4 km²); each has an area and a peak;
- *convective share*: the cells' total area over the echo area.

A frame is

1. **supercell** when its largest cell is large and intense (area
   ``>= supercell_km2``, 100 km², and peak ``>= supercell_dbz``, 50 dBZ) and
   dominates: every other cell with a peak ``>= companion_dbz`` (45 dBZ) is at
   most ``1 / dominance`` (1/2) of its area (weak ordinary cells beside it do not
   count; two such storms of similar size are a cluster, below);
2. else **advection** when the echo is widespread and mostly stratiform: echo
   fraction ``>= widespread_fraction`` (5 % of the covered area) and convective
   share ``< stratiform_share`` (0.15): rain carried by the wind, with embedded
   cells;
3. else **multicell** when it has at least ``multicell_cells`` (2) cells;
4. else **advection** (no cell, a single ordinary cell: anything else).

A window's class is the most common frame class among its input frames; a tie
goes to the more convective class (supercell, then multicell). The motion speed
is reported (:class:`FrameFeatures` has none; :func:`window_features` adds the
optical-flow speed when given) but does not enter the rule: all three regimes
occur at any steering speed.

Class indices: :data:`CLASSES` = ``("advection", "multicell", "supercell")``
(0, 1, 2), the simulator's :data:`~nowcast.synthetic.REGIMES` order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from nowcast.forecasters.flow import filled_composite
from nowcast.synthetic import REGIMES

CLASSES: tuple[str, ...] = tuple(REGIMES)
ADVECTION, MULTICELL, SUPERCELL = 0, 1, 2
_EIGHT = np.ones((3, 3), dtype=bool)


def class_index(name: str) -> int:
    """``"advection"`` -> 0 ...; an unknown name raises a ``ValueError``."""
    try:
        return CLASSES.index(name)
    except ValueError:
        raise ValueError(
            f"unknown regime {name!r}: choose one of {', '.join(CLASSES)}"
        ) from None


@dataclass(frozen=True)
class FrameFeatures:
    """What the rule looks at in one frame (areas in km²)."""

    echo_fraction: float
    echo_km2: float
    n_cells: int
    cell_areas_km2: tuple[float, ...]
    cell_peaks_dbz: tuple[float, ...]
    peak_dbz: float

    @property
    def convective_share(self) -> float:
        return sum(self.cell_areas_km2) / self.echo_km2 if self.echo_km2 > 0 else 0.0


@dataclass(frozen=True)
class RegimeRule:
    """The thresholds of the classification rule (see the module doc)."""

    echo_dbz: float = 20.0
    cell_dbz: float = 35.0
    min_cell_km2: float = 4.0
    widespread_fraction: float = 0.05
    stratiform_share: float = 0.15
    supercell_dbz: float = 50.0
    supercell_km2: float = 100.0
    companion_dbz: float = 45.0
    dominance: float = 2.0
    multicell_cells: int = 2

    def features(self, composite: np.ndarray, dx_km: float) -> FrameFeatures:
        """Features of one ``(y, x)`` column-maximum frame (dBZ, NaN allowed)."""
        c = np.asarray(composite, dtype=np.float32)
        covered = np.isfinite(c)
        c = np.where(covered, c, -np.inf)
        pixel_km2 = float(dx_km) ** 2
        n_cov = int(covered.sum())
        n_echo = int((c >= self.echo_dbz).sum())
        labels, n = ndimage.label(c >= self.cell_dbz, structure=_EIGHT)
        areas = peaks = np.zeros(0)
        if n:
            index = np.arange(1, n + 1)
            areas = np.bincount(labels.ravel(), minlength=n + 1)[1:] * pixel_km2
            peaks = np.asarray(ndimage.maximum(c, labels, index), dtype=np.float64)
            keep = areas >= self.min_cell_km2
            order = np.argsort(-areas[keep], kind="stable")
            areas, peaks = areas[keep][order], peaks[keep][order]
        finite_peak = float(c[covered].max()) if n_cov else float("nan")
        return FrameFeatures(
            echo_fraction=n_echo / n_cov if n_cov else 0.0,
            echo_km2=n_echo * pixel_km2,
            n_cells=int(areas.size),
            cell_areas_km2=tuple(float(a) for a in areas),
            cell_peaks_dbz=tuple(float(p) for p in peaks),
            peak_dbz=finite_peak,
        )

    def classify_features(self, f: FrameFeatures) -> int:
        """The class index of one frame's features (steps 1-4 of the rule)."""
        if f.n_cells == 0:
            return ADVECTION
        area, peak = f.cell_areas_km2[0], f.cell_peaks_dbz[0]
        if area >= self.supercell_km2 and peak >= self.supercell_dbz:
            rivals = [
                a
                for a, p in zip(f.cell_areas_km2[1:], f.cell_peaks_dbz[1:])
                if p >= self.companion_dbz
            ]
            if all(a * self.dominance <= area for a in rivals):
                return SUPERCELL
        if (
            f.echo_fraction >= self.widespread_fraction
            and f.convective_share < self.stratiform_share
        ):
            return ADVECTION
        if f.n_cells >= self.multicell_cells:
            return MULTICELL
        return ADVECTION

    def classify_frame(self, composite: np.ndarray, dx_km: float) -> int:
        """The class index of one ``(y, x)`` column-maximum frame."""
        return self.classify_features(self.features(composite, dx_km))


def vote(frame_classes: list[int] | np.ndarray) -> int:
    """The most common class; ties go to the more convective (higher) index."""
    counts = Counter(int(c) for c in frame_classes)
    if not counts:
        raise ValueError("no frame to classify")
    best = max(counts.values())
    return max(c for c, k in counts.items() if k == best)


def classify_window(
    frames: np.ndarray,
    dx_km: float,
    rule: RegimeRule | None = None,
    floor: float = 0.0,
) -> int:
    """Class index of the input frames ``(t, z, y, x)`` dBZ of one window."""
    rule = rule or RegimeRule()
    composite = composite_with_nan(frames, floor)
    return vote([rule.classify_frame(c, dx_km) for c in composite])


def composite_with_nan(frames: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Column maximum ``(t, y, x)``; NaN where a whole column is uncovered."""
    frames = np.asarray(frames, dtype=np.float32)
    composite = filled_composite(frames, floor)
    uncovered = np.isnan(frames).all(axis=1)
    if uncovered.any():
        composite[uncovered] = np.nan
    return composite


def window_features(
    features: list[FrameFeatures],
    rule: RegimeRule,
    flow: np.ndarray | None = None,
) -> dict[str, Any]:
    """A summary of a window's frames for logs and reports (not used by the rule).

    Medians over the frames of the cell count, the largest cell's area and the
    convective share; the highest peak; the frame classes; with ``flow``
    (``(2, y, x)`` px/step) the median optical-flow speed over the echo-free
    and echo pixels alike.
    """
    out: dict[str, Any] = {
        "n_cells": float(np.median([f.n_cells for f in features])),
        "largest_cell_km2": float(
            np.median([f.cell_areas_km2[0] if f.n_cells else 0.0 for f in features])
        ),
        "convective_share": float(np.median([f.convective_share for f in features])),
        "echo_fraction": float(np.median([f.echo_fraction for f in features])),
        "peak_dbz": float(np.nanmax([f.peak_dbz for f in features])),
        "frame_classes": [rule.classify_features(f) for f in features],
        "rule": asdict(rule),
    }
    if flow is not None:
        out["flow_speed_px"] = float(np.median(np.hypot(flow[0], flow[1])))
    return out
