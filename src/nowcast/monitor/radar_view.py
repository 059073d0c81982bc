"""Radar views: one reflectivity field as a picture, with its title above it.

- :class:`RadarView` draws the field (a :class:`~nowcast.monitor.forecasts.Field`)
  with half blocks (:class:`~nowcast.monitor.image.RadarImage`) to fill the widget,
  keeping grid cells square: every terminal.
- :class:`GraphicRadarView` draws it as an image at the terminal's pixel
  resolution (Sixel or kitty's graphics protocol, through textual-image's widget;
  :mod:`.pictures` chooses), fitted to the widget with square grid cells.
- Both have the same API (:meth:`show`, ``caption``, ``field``, ``note``); without
  a field they show a line saying why (not yet loaded, not written, unreadable).
  :func:`radar_view_class` gives the class of a picture mode.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from nowcast.monitor.forecasts import Field
from nowcast.monitor.image import RadarImage
from nowcast.monitor.pictures import PictureMode, field_image, image_widget_class


class _ShowsAField:
    """What both views share: a title, a field or a note, and :meth:`show`."""

    _title = ""
    _field: Field | None = None
    _message = ""

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
        if (title, field, message) == (self._title, self._field, self._message):
            return
        previous = self._field
        self._title, self._field, self._message = title, field, message
        self._changed(previous)

    def _changed(self, previous: Field | None) -> None:
        raise NotImplementedError


def _title_text(title: str) -> Text:
    return Text(title, style="bold", no_wrap=True, overflow="ellipsis")


class RadarView(_ShowsAField, Widget):
    """A titled radar picture (see the module docstring)."""

    def _changed(self, previous: Field | None) -> None:
        self.refresh()

    def render(self) -> RenderableType:
        width, height = self.content_size.width, self.content_size.height
        title = _title_text(self._title)
        if self._field is None:
            return Group(title, Text(self._message, style="dim italic"))
        image = RadarImage(self._field.values, width, max(height - 1, 1))
        return Group(title, image)


class GraphicRadarView(_ShowsAField, Vertical):
    """A titled radar image drawn by a textual-image widget (see the module)."""

    def __init__(
        self,
        image_class: type,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._image_class = image_class

    def compose(self) -> ComposeResult:
        yield Static(_title_text(self._title), classes="radar-title")
        yield Static(Text(self._message, style="dim italic"), classes="radar-note")
        yield self._image_class(classes="radar-picture")

    @property
    def picture(self) -> Any:
        """The textual-image widget."""
        return self.query_one(".radar-picture")

    def on_mount(self) -> None:
        self._update(None)

    def _changed(self, previous: Field | None) -> None:
        if self.is_mounted:
            self._update(previous)

    def _update(self, previous: Field | None) -> None:
        self.query_one(".radar-title", Static).update(_title_text(self._title))
        note = self.query_one(".radar-note", Static)
        note.update(Text(self._message, style="dim italic"))
        note.display = self._field is None
        picture = self.picture
        if self._field is None:
            picture.image = None
        elif self._field is not previous or picture.image is None:
            picture.image = field_image(self._field.values)
        picture.display = self._field is not None


def radar_view_class(mode: PictureMode | None) -> Any:
    """A factory ``(id=...) -> view`` for ``mode`` (half blocks when None)."""
    if mode is None or not mode.graphics:
        return RadarView
    image_class = image_widget_class(mode)

    def make(*, id: str | None = None, classes: str | None = None) -> GraphicRadarView:
        return GraphicRadarView(image_class, id=id, classes=classes)

    return make
