"""The reflectivity palette: NWS-like colours in 5 dBZ steps, and its legend.

Contract
--------
- :data:`BOUNDS` are the lower edges of the coloured classes (5, 10, ... 75 dBZ);
  :data:`COLOURS` holds, by class index, ``NO_COVERAGE`` (index 0, NaN: the radar
  did not see the pixel), ``NO_ECHO`` (index 1, below 5 dBZ) and one colour a
  class (index ``k + 2`` for ``BOUNDS[k] <= dBZ < BOUNDS[k + 1]``).
- :func:`classify` maps dBZ to class indices (vectorised, NaN to 0).
- :func:`pair_style` is the Rich style of one character cell showing two pixels
  with the upper half block: the upper pixel's colour in front, the lower one's
  behind. Styles are cached (there are only ``len(COLOURS) ** 2`` of them).
- :func:`legend` is one line of text: each class on its colour, labelled in dBZ.

Pure Rich and numpy: nothing here imports Textual.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.style import Style
from rich.text import Text

NO_COVERAGE = "#3a3a3a"
NO_ECHO = "#000000"
BOUNDS = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75)
CLASS_COLOURS = (
    "#04e9e7",  # 5
    "#019ff4",  # 10
    "#0300f4",  # 15
    "#02fd02",  # 20
    "#01c501",  # 25
    "#008e00",  # 30
    "#fdf802",  # 35
    "#e5bc00",  # 40
    "#fd9500",  # 45
    "#fd0000",  # 50
    "#d40000",  # 55
    "#bc0000",  # 60
    "#f800fd",  # 65
    "#9854c6",  # 70
    "#fdfdfd",  # 75
)
COLOURS = (NO_COVERAGE, NO_ECHO, *CLASS_COLOURS)
HALF_BLOCK = "\u2580"  # upper half block: foreground on top, background below

_EDGES = np.asarray(BOUNDS, dtype=np.float32)


def classify(dbz: np.ndarray) -> np.ndarray:
    """Class indices (uint8) of ``dbz``: 0 no coverage, 1 no echo, 2.. classes."""
    values = np.asarray(dbz, dtype=np.float32)
    out = np.digitize(values, _EDGES).astype(np.uint8) + 1
    out[np.isnan(values)] = 0
    return out


@lru_cache(maxsize=len(COLOURS) ** 2)
def pair_style(upper: int, lower: int) -> Style:
    """Style of a cell drawing class ``upper`` above class ``lower``."""
    return Style(color=COLOURS[upper], bgcolor=COLOURS[lower])


def _text_colour(background: str) -> str:
    r, g, b = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def legend() -> Text:
    """The palette as one line (60 columns): each class labelled on its colour."""
    text = Text("dBZ ", style="bold")
    for bound, colour in zip(BOUNDS, CLASS_COLOURS):
        style = Style(color=_text_colour(colour), bgcolor=colour)
        text.append(f"{bound:>3}", style=style)
    text.append(" ")
    text.append("  ", style=Style(bgcolor=NO_COVERAGE))
    text.append(" no data", style="dim")
    return text
