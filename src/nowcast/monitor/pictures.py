"""How the radar panels draw a field: terminal images, or half blocks.

Contract
--------
- :func:`choose_mode` ``(requested, environ, is_tty)`` -> :class:`PictureMode`:
  ``halfblock`` draws two pixels a character cell with coloured half blocks
  (:mod:`.image`; works in every terminal, over plain SSH, in tmux); ``sixel`` and
  ``tgp`` (kitty's graphics protocol) draw the field as an image at the terminal's
  pixel resolution through ``textual-image``. ``auto`` takes half blocks when
  stdout is not a terminal, inside tmux or GNU screen (which do not pass image
  protocols through reliably), when ``TERM`` is ``dumb``/``linux``, or when
  ``textual-image`` is not installed; otherwise it asks the terminal what it can
  draw (textual-image's query: Sixel first, then TGP) and falls back to half
  blocks when it can draw neither. The query must run before the Textual app
  starts (Textual then owns stdin): :func:`nowcast.monitor.app.main` calls this
  first. For an image mode it also imports textual-image's widgets there, which
  ask the terminal its cell size in pixels once (cached) for the same reason; a
  terminal that reports no size gets half blocks. An explicit ``sixel``/``tgp``
  without ``textual-image`` (or without a size) is a :class:`PictureError`
  saying why. The mode says why it was chosen (:attr:`PictureMode.reason`; the
  app keeps it as ``MonitorApp.pictures``).
- :func:`field_image` turns a 2D dBZ field (north up) into a palette ("P" mode)
  PIL image of the same size in the colours of :mod:`.palette`; resizing a
  palette image takes the nearest pixel, so the classes' colours stay exact at
  any size.
- :func:`image_widget_class` is the textual-image widget class of a mode.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nowcast.errors import NowcastError
from nowcast.monitor.palette import COLOURS, classify

MODES = ("auto", "sixel", "tgp", "halfblock")
INSTALL = "pip install textual-image"


class PictureError(NowcastError):
    """The requested picture mode cannot be used."""


@dataclass(frozen=True)
class PictureMode:
    """How radar panels draw, and why."""

    name: str  # "halfblock", "sixel" or "tgp"
    reason: str

    @property
    def graphics(self) -> bool:
        return self.name != "halfblock"


def _have_textual_image() -> bool:
    try:
        import textual_image  # noqa: F401
    except ImportError:
        return False
    return True


def _detected() -> str:
    """What textual-image found the terminal draws: sixel, tgp or neither."""
    from textual_image.renderable import Image, SixelImage, TGPImage

    if Image is SixelImage:
        return "sixel"
    if Image is TGPImage:
        return "tgp"
    return "halfblock"


def choose_mode(
    requested: str = "auto",
    environ: Mapping[str, str] | None = None,
    is_tty: bool | None = None,
) -> PictureMode:
    """The mode to draw with (see the module contract)."""
    if requested not in MODES:
        raise PictureError(f"pictures {requested!r}: one of {', '.join(MODES)}")
    if requested == "halfblock":
        return PictureMode("halfblock", "asked for half blocks")
    if requested in ("sixel", "tgp"):
        if not _have_textual_image():
            raise PictureError(
                f"pictures = {requested!r} needs textual-image: {INSTALL}"
            )
        return _ready(PictureMode(requested, f"asked for {requested}"), strict=True)
    environ = os.environ if environ is None else environ
    if is_tty is None:
        is_tty = bool(sys.__stdout__ and sys.__stdout__.isatty())
    term = environ.get("TERM", "")
    if not is_tty:
        return PictureMode("halfblock", "not a terminal")
    if environ.get("TMUX") or term.startswith(("screen", "tmux")):
        return PictureMode("halfblock", "inside tmux or screen")
    if term in ("dumb", "linux", ""):
        return PictureMode("halfblock", f"TERM={term or 'unset'}")
    if not _have_textual_image():
        return PictureMode("halfblock", f"textual-image is not installed ({INSTALL})")
    found = _detected()
    if found == "halfblock":
        return PictureMode(
            "halfblock", "the terminal draws neither Sixel nor kitty images"
        )
    return _ready(PictureMode(found, f"the terminal draws {found} images"))


def _ready(mode: PictureMode, strict: bool = False) -> PictureMode:
    """Import the image widgets now: their import asks the terminal its cell
    size, which cannot be done once Textual reads stdin. When that fails (a
    terminal that reports no size), half blocks, saying why; asked for
    explicitly (``strict``), a :class:`PictureError`."""
    try:
        import textual_image.widget  # noqa: F401
    except Exception as exc:  # textual-image divides by the reported size
        why = f"textual-image cannot read the terminal's cell size ({exc!r})"
        if strict:
            raise PictureError(f"pictures = {mode.name!r}: {why}") from None
        return PictureMode("halfblock", why)
    return mode


_LUT = np.array(
    [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in COLOURS], dtype=np.uint8
)


def field_image(values: np.ndarray) -> Any:
    """A "P" mode PIL image of a (y, x) dBZ field, row 0 the top (north)."""
    from PIL import Image

    field = np.asarray(values, dtype=np.float32)
    if field.ndim != 2 or 0 in field.shape:
        raise ValueError(f"field must be a non-empty (y, x) array, got {field.shape}")
    classes = np.ascontiguousarray(classify(field))
    image = Image.frombytes("P", (field.shape[1], field.shape[0]), classes.tobytes())
    image.putpalette(_LUT.ravel().tolist())
    return image


def image_widget_class(mode: PictureMode) -> type:
    """The textual-image widget that draws ``mode`` (sixel or tgp)."""
    from textual_image.widget import SixelImage, TGPImage

    if mode.name == "sixel":
        return SixelImage
    if mode.name == "tgp":
        return TGPImage
    raise ValueError(f"no image widget for {mode.name}")
