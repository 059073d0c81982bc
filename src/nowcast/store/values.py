"""How Python values become row values and back (shared by writer and reader).

Contract
--------
- Scores and other measurements that are NaN or infinite are stored as NULL, and
  read back as NaN (the convention of :mod:`nowcast.verification`: undefined is
  NaN, never 0).
- JSON columns hold strict JSON (no NaN: non-finite floats become ``null``), with
  sorted keys; :func:`loads` reads them back.
- Event levels are the :mod:`logging` names in lower case; ``level_no`` is the
  :mod:`logging` number, so "warning and worse" is ``level_no >= 30``.
- A score row is a mapping with the keys of
  :meth:`~nowcast.verification.ScoreAccumulator.table` or a
  ``(lead_s, kind, threshold, Counts[, mae])`` tuple.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from nowcast.verification.contingency import Counts

KINDS = ("3d", "composite")
SPLITS = ("train", "val")
RUN_STATUSES = ("running", "completed", "failed", "interrupted")
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

#: A row of :meth:`MetricsStore.record_scores`: a mapping with the keys of
#: :meth:`~nowcast.verification.ScoreAccumulator.table`, or
#: ``(lead_s, kind, threshold, Counts)`` / ``(lead_s, kind, threshold, Counts, mae)``.
ScoreRow = Mapping[str, Any] | tuple[Any, ...]


def finite(value: Any, name: str) -> float | None:
    """``value`` as a float, or None when it is None, NaN or infinite.

    Raises
    ------
    ValueError
        When ``value`` is not a number.
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    return number if math.isfinite(number) else None


def dumps(value: Any, name: str) -> str:
    """Strict JSON text with sorted keys (non-finite floats become null).

    Raises
    ------
    ValueError
        When ``value`` cannot be written as JSON (``name`` says which argument).
    """

    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, Mapping):
            return {str(k): clean(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(v) for v in item]
        return item

    try:
        return json.dumps(clean(value), allow_nan=False, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot be written as JSON: {exc}") from None


def parse_level(level: str | int) -> tuple[str, int]:
    """``(name, number)`` of a level name (any case, ``warn`` too) or number.

    Raises
    ------
    ValueError
        When the level is not one of :data:`LEVELS`.
    """
    if isinstance(level, int) and not isinstance(level, bool):
        name = str(logging.getLevelName(level)).lower()
        if name not in LEVELS:
            raise ValueError(f"level: unknown level number {level}")
        return name, LEVELS[name]
    name = str(level).lower()
    if name == "warn":
        name = "warning"
    if name not in LEVELS:
        raise ValueError(f"level: unknown level {level!r}: one of {', '.join(LEVELS)}")
    return name, LEVELS[name]


def score_row(row: ScoreRow) -> tuple[int, str, float, int, Counts, float | None]:
    """``(lead_s, kind, threshold, n_forecasts, counts, mae)`` from one row.

    Raises
    ------
    ValueError
        When a mapping lacks a key, a tuple has the wrong shape, or the kind is
        not one of :data:`KINDS`.
    """
    if isinstance(row, Mapping):
        try:
            lead, kind, thr = row["lead_s"], row["kind"], row["threshold"]
            counts = Counts(
                int(row["hits"]),
                int(row["misses"]),
                int(row["false_alarms"]),
                int(row["correct_negatives"]),
            )
        except KeyError as exc:
            raise ValueError(f"score row {dict(row)!r} lacks the key {exc}") from None
        n = int(row.get("forecasts", 1) or 1)
        mae = row.get("mae")
    else:
        if len(row) not in (4, 5) or not isinstance(row[3], Counts):
            raise ValueError(
                "a score row is a mapping or (lead_s, kind, threshold, Counts[, mae])"
                f", got {row!r}"
            )
        lead, kind, thr, counts = row[:4]
        mae = row[4] if len(row) == 5 else None
        n = 1
    if kind not in KINDS:
        raise ValueError(f"score row kind {kind!r}: one of {', '.join(KINDS)}")
    return int(lead), str(kind), float(thr), max(n, 1), counts, finite(mae, "mae")


def output_dir(outputs: Iterable[str | os.PathLike[str]]) -> tuple[str | None, int]:
    """The common folder of the files written and their number."""
    paths = [os.fspath(p) for p in outputs]
    if not paths:
        return None, 0
    parents = [os.path.dirname(os.path.abspath(p)) for p in paths]
    try:
        common = os.path.commonpath(parents)
    except ValueError:  # different drives: keep the first folder
        common = parents[0]
    return common, len(paths)


def config_json(config: Any) -> str:
    """JSON text of a config: a mapping, a pydantic model, JSON text or None.

    Raises
    ------
    ValueError
        When text is not JSON or the value cannot be written as JSON.
    """
    if config is None:
        return "{}"
    if isinstance(config, str):
        try:
            json.loads(config)
        except json.JSONDecodeError as exc:
            raise ValueError(f"config: not JSON text: {exc}") from None
        return config
    if hasattr(config, "model_dump"):  # a pydantic Settings object
        config = config.model_dump(mode="json")
    return dumps(config, "config")


def nan_if_none(value: float | None) -> float:
    """A stored measurement as a float: NULL becomes NaN."""
    return float("nan") if value is None else float(value)


def loads(text: str | None) -> Any:
    """A JSON column's value (NULL or empty becomes an empty dict)."""
    if not text:
        return {}
    return json.loads(text)
