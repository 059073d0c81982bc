"""A small line chart in braille characters (2 x 4 dots a cell), with a y axis.

Contract
--------
:class:`BrailleChart` is a Rich renderable of one or more series over a shared x
index (``0 .. n - 1``) drawn into ``width x height`` cells: the y axis labels take
the left ``label_width`` columns (top, bottom and each horizontal line), the x
labels (left, middle, right) the last line. NaN values leave gaps. Horizontal lines
(an operational bar) are drawn as dashes, vertical lines (phase boundaries) as
dotted columns, both under the series. Where two series share a cell, the later
one's colour wins. ``log=True`` plots ``log10`` of positive values.

Pure Rich: nothing here imports Textual.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row][col]


@dataclass(frozen=True)
class Series:
    """One line: values (NaN = gap), its colour and its name for the key."""

    values: Sequence[float]
    colour: str
    name: str = ""


@dataclass(frozen=True)
class HLine:
    """A horizontal line at ``value`` (e.g. the 0.4 CSI bar)."""

    value: float
    colour: str
    label: str = ""


@dataclass
class BrailleChart:
    """See the module docstring."""

    series: Sequence[Series]
    width: int
    height: int
    y_range: tuple[float, float] | None = None
    hlines: Sequence[HLine] = ()
    vlines: Sequence[tuple[float, str]] = ()
    x_labels: tuple[str, str, str] = ("", "", "")
    log: bool = False
    label_width: int = 6
    _cells: dict[tuple[int, int], list[int | str]] = field(
        default_factory=dict, repr=False
    )

    # -- geometry ----------------------------------------------------------------------

    def _transform(self, value: float) -> float:
        if not self.log:
            return value
        return math.log10(value) if value > 0 else math.nan

    def _range(self) -> tuple[float, float]:
        if self.y_range is not None:
            lo, hi = (self._transform(v) for v in self.y_range)
        else:
            found = [
                self._transform(v)
                for s in self.series
                for v in s.values
                if v is not None and math.isfinite(v)
            ]
            found = [v for v in found if math.isfinite(v)]
            found += [self._transform(h.value) for h in self.hlines]
            lo, hi = (min(found), max(found)) if found else (0.0, 1.0)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo, hi = 0.0, 1.0
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        return lo, hi

    @property
    def n(self) -> int:
        return max((len(s.values) for s in self.series), default=0)

    def _plot_size(self) -> tuple[int, int]:
        return max(1, self.width - self.label_width), max(1, self.height - 1)

    def _x_dot(self, i: float) -> int:
        cols, _ = self._plot_size()
        return round(i * (2 * cols - 1) / max(self.n - 1, 1))

    def _y_dot(self, value: float, lo: float, hi: float) -> int | None:
        _, rows = self._plot_size()
        v = self._transform(value)
        if not math.isfinite(v):
            return None
        frac = (hi - v) / (hi - lo)
        return round(min(max(frac, 0.0), 1.0) * (4 * rows - 1))

    # -- drawing -----------------------------------------------------------------------

    def _dot(self, x: int, y: int, colour: str) -> None:
        cell = self._cells.setdefault((y // 4, x // 2), [0, colour])
        cell[0] = int(cell[0]) | _DOTS[y % 4][x % 2]
        cell[1] = colour

    def _line(self, x0: int, y0: int, x1: int, y1: int, colour: str) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for k in range(steps + 1):
            self._dot(
                round(x0 + (x1 - x0) * k / steps),
                round(y0 + (y1 - y0) * k / steps),
                colour,
            )

    def _draw(self, lo: float, hi: float) -> None:
        self._cells = {}
        cols, rows = self._plot_size()
        for x, colour in self.vlines:
            xd = self._x_dot(x)
            for y in range(0, 4 * rows, 2):
                self._dot(xd, y, colour)
        for h in self.hlines:
            y = self._y_dot(h.value, lo, hi)
            if y is not None:
                for x in range(2 * cols):
                    if x % 4 < 2:
                        self._dot(x, y, h.colour)
        for s in self.series:
            prev: tuple[int, int] | None = None
            for i, v in enumerate(s.values):
                y = None if v is None else self._y_dot(v, lo, hi)
                if y is None:
                    prev = None
                    continue
                x = self._x_dot(i)
                if prev is None:
                    self._dot(x, y, s.colour)
                else:
                    self._line(*prev, x, y, s.colour)
                prev = (x, y)

    def _label(self, value: float) -> str:
        v = 10**value if self.log else value
        text = f"{v:.3g}" if abs(v) < 1000 else f"{v:.0e}"
        return text[: self.label_width - 1].rjust(self.label_width - 1)

    def lines(self) -> list[list[Segment]]:
        """The chart, one list of segments a line."""
        lo, hi = self._range()
        self._draw(lo, hi)
        cols, rows = self._plot_size()
        labels: dict[int, str] = {0: self._label(hi), rows - 1: self._label(lo)}
        for h in self.hlines:
            y = self._y_dot(h.value, lo, hi)
            if y is not None:
                labels[y // 4] = self._label(self._transform(h.value))
        axis = Style(dim=True)
        out = []
        for r in range(rows):
            label = labels.get(r, " " * (self.label_width - 1))
            tick = "\u2524" if r in labels else "\u2502"
            line = [Segment(label, axis), Segment(tick, axis)]
            for c in range(cols):
                cell = self._cells.get((r, c))
                if cell is None:
                    line.append(Segment(" "))
                else:
                    dots, colour = int(cell[0]), str(cell[1])
                    line.append(Segment(chr(0x2800 + dots), Style(color=colour)))
            out.append(line)
        left, middle, right = self.x_labels
        gap = cols - len(left) - len(middle) - len(right)
        bottom = " " * self.label_width + left
        if gap >= 2 and middle:
            half = (cols - len(middle)) // 2 - len(left)
            bottom += " " * max(half, 1) + middle
        bottom = bottom.ljust(self.width - len(right)) + right
        out.append([Segment(bottom[: self.width], axis)])
        return out

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        for line in self.lines():
            yield from line
            yield Segment.line()


_BLOCKS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"


def spark(values: Sequence[float], width: int, log: bool = False) -> str:
    """``values`` as one line of block characters, at most ``width`` wide.

    Longer series are sampled evenly (first and last kept); NaN is a space.
    """
    vals = [float(v) if v is not None else math.nan for v in values]
    if log:
        vals = [math.log10(v) if v > 0 else math.nan for v in vals]
    if not vals or width <= 0:
        return ""
    if len(vals) > width:
        step = (len(vals) - 1) / max(width - 1, 1)
        vals = [vals[round(k * step)] for k in range(width)]
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return " " * len(vals)
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    return "".join(
        _BLOCKS[min(int((v - lo) / span * len(_BLOCKS)), len(_BLOCKS) - 1)]
        if math.isfinite(v)
        else " "
        for v in vals
    )
