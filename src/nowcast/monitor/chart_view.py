"""``ChartView``: a braille line chart (:class:`~nowcast.monitor.plot.BrailleChart`)
that fills its widget, or a line saying why there is nothing to draw."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from nowcast.monitor.plot import BrailleChart, HLine, Series


class ChartView(Widget):
    """A chart sized to the widget; :meth:`plot` replaces what it draws."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._series: tuple[Series, ...] = ()
        self._options: dict[str, Any] = {}
        self._empty = "no data yet"

    @property
    def series(self) -> tuple[Series, ...]:
        return self._series

    def plot(
        self,
        series: Sequence[Series],
        *,
        y_range: tuple[float, float] | None = None,
        hlines: Sequence[HLine] = (),
        vlines: Sequence[tuple[float, str]] = (),
        x_labels: tuple[str, str, str] = ("", "", ""),
        log: bool = False,
        empty: str = "no data yet",
    ) -> None:
        """Draw ``series`` (NaN = gap); ``empty`` is shown when none has a value."""
        self._series = tuple(series)
        self._options = dict(
            y_range=y_range, hlines=tuple(hlines), vlines=tuple(vlines),
            x_labels=x_labels, log=log,
        )
        self._empty = empty
        self.refresh()

    def has_data(self) -> bool:
        return any(
            v is not None and math.isfinite(v) for s in self._series for v in s.values
        )

    def render(self) -> RenderableType:
        if not self.has_data():
            return Text(self._empty, style="dim italic")
        size = self.content_size
        return BrailleChart(
            self._series, max(size.width, 8), max(size.height, 2), **self._options
        )
