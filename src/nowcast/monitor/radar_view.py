"""``RadarView``: one reflectivity field as a picture, with its title above it.

The field (a :class:`~nowcast.monitor.forecasts.Field`) is drawn by
:class:`~nowcast.monitor.image.RadarImage` to fill the widget, keeping grid cells
square; without a field the view shows a line saying why (not yet loaded, not
written, unreadable).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual.widget import Widget

from nowcast.monitor.forecasts import Field
from nowcast.monitor.image import RadarImage


class RadarView(Widget):
    """A titled radar picture (see the module docstring)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._title = ""
        self._field: Field | None = None
        self._message = ""

    @property
    def caption(self) -> str:
        """The title shown above the picture."""
        return self._title

    @property
    def field(self) -> Field | None:
        """The field shown, if any."""
        return self._field

    @property
    def note(self) -> str:
        """The line shown instead of a picture."""
        return self._message

    def show(
        self,
        title: str,
        field: Field | None,
        message: str = "",
        *,
        keep: bool = False,
    ) -> None:
        """Show ``field`` under ``title``, or ``message`` when there is none.

        ``keep``: while the new field is being read, the picture shown stays (with
        its own title), so that stepping and new forecasts do not flicker.
        """
        if keep and field is None and self._field is not None:
            return
        if (title, field, message) != (self._title, self._field, self._message):
            self._title, self._field, self._message = title, field, message
            self.refresh()

    def render(self) -> RenderableType:
        width, height = self.content_size.width, self.content_size.height
        title = Text(self._title, style="bold", no_wrap=True, overflow="ellipsis")
        if self._field is None:
            return Group(title, Text(self._message, style="dim italic"))
        image = RadarImage(self._field.values, width, max(height - 1, 1))
        return Group(title, image)
