"""A reflectivity field as a terminal picture: two pixels a character cell.

Contract
--------
- :func:`fit` chooses the picture's size in pixels for a field of ``(ny, nx)`` grid
  points inside ``columns x rows`` character cells, keeping grid cells square (a
  cell is one pixel wide and two tall, a terminal cell being about twice as tall
  as wide). The height is always even.
- :func:`block_max` resamples a ``(ny, nx)`` field to ``(rows, cols)``: where it
  shrinks, each pixel is the maximum of its block of grid points ignoring NaN (so
  a small core stays visible); where it grows, the nearest grid point. A block
  with nothing but NaN stays NaN (no coverage).
- :class:`RadarImage` is a Rich renderable of one field (north up: row 0 is the
  northern edge), centred in the width it is given; each cell is the upper half
  block with the upper pixel as foreground and the lower as background colour, in
  the palette of :mod:`.palette`.

Pure Rich and numpy: nothing here imports Textual.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from nowcast.monitor.palette import HALF_BLOCK, classify, pair_style


def fit(ny: int, nx: int, columns: int, rows: int) -> tuple[int, int]:
    """``(pixel_rows, pixel_cols)`` of a field shown in ``columns x rows`` cells."""
    if ny <= 0 or nx <= 0 or columns <= 0 or rows <= 0:
        return (0, 0)
    scale = min(columns / nx, 2 * rows / ny)
    cols = max(1, min(columns, round(nx * scale)))
    pixel_rows = max(2, min(2 * rows, round(ny * scale)))
    pixel_rows += pixel_rows % 2
    return (min(pixel_rows, 2 * rows), cols)


def _axis(values: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = values.shape[axis]
    if n_out == n_in:
        return values
    if n_out < n_in:
        starts = (np.arange(n_out) * n_in) // n_out
        return np.fmax.reduceat(values, starts, axis=axis)
    index = ((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.intp)
    return np.take(values, np.minimum(index, n_in - 1), axis=axis)


def block_max(field: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``field`` (y, x) resampled to ``(rows, cols)`` by block maximum (see module)."""
    values = np.asarray(field, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"field must be (y, x), got shape {values.shape}")
    return _axis(_axis(values, rows, 0), cols, 1)


class RadarImage:
    """Rich renderable: ``field`` (north up) in at most ``columns x rows`` cells."""

    def __init__(self, field: np.ndarray, columns: int, rows: int) -> None:
        self.field = field
        self.columns = columns
        self.rows = rows

    def lines(self) -> list[list[Segment]]:
        """The picture, one list of segments a terminal line, centred."""
        ny, nx = self.field.shape
        pixel_rows, cols = fit(ny, nx, self.columns, self.rows)
        if cols == 0:
            return []
        classes = classify(block_max(self.field, pixel_rows, cols))
        pad = (self.columns - cols) // 2
        left = Segment(" " * pad) if pad else None
        out = []
        for r in range(0, pixel_rows, 2):
            upper, lower = classes[r], classes[r + 1]
            line: list[Segment] = [left] if left else []
            start = 0
            for c in range(1, cols + 1):
                if c < cols and upper[c] == upper[start] and lower[c] == lower[start]:
                    continue
                style: Style = pair_style(int(upper[start]), int(lower[start]))
                line.append(Segment(HALF_BLOCK * (c - start), style))
                start = c
            out.append(line)
        return out

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        for line in self.lines():
            yield from line
            yield Segment.line()
