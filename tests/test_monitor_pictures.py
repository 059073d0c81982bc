"""Radar panels as terminal images: the mode choice (against a real pseudo-terminal
that answers like a Sixel or a kitty terminal, or not at all), the palette image,
and the dashboard drawing its panels through textual-image's widgets."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from monitor_workspace import NOW, make_workspace, run_async, settle

from nowcast.monitor.app import MonitorApp, main
from nowcast.monitor.palette import COLOURS, classify
from nowcast.monitor.pictures import (
    PictureError,
    PictureMode,
    choose_mode,
    field_image,
)
from nowcast.monitor.radar_view import GraphicRadarView, RadarView

SixelImage = pytest.importorskip("textual_image.widget").SixelImage  # a core dependency

TTY = {"TERM": "xterm-256color"}


@pytest.mark.parametrize(
    ("environ", "is_tty", "reason"),
    [
        (TTY, False, "not a terminal"),
        ({**TTY, "TMUX": "/tmp/tmux-0/default,1,0"}, True, "inside tmux or screen"),
        ({"TERM": "screen-256color"}, True, "inside tmux or screen"),
        ({"TERM": "dumb"}, True, "TERM=dumb"),
        ({}, True, "TERM=unset"),
    ],
)
def test_auto_takes_half_blocks_where_images_do_not_pass(environ, is_tty, reason):
    mode = choose_mode("auto", environ, is_tty)
    assert (mode.name, mode.reason) == ("halfblock", reason)
    assert not mode.graphics


def test_explicit_modes_and_a_missing_textual_image(monkeypatch):
    assert choose_mode("halfblock", TTY, True).name == "halfblock"
    assert choose_mode("sixel", {}, False).name == "sixel"  # asked for: no query
    assert choose_mode("tgp", {}, False).graphics
    with pytest.raises(PictureError, match="one of auto, sixel, tgp, halfblock"):
        choose_mode("iterm")
    monkeypatch.setitem(sys.modules, "textual_image", None)
    mode = choose_mode("auto", TTY, True)
    assert mode.name == "halfblock" and "pip install textual-image" in mode.reason
    with pytest.raises(PictureError, match="needs textual-image: pip install"):
        choose_mode("sixel")


_CHILD = """
import sys
from nowcast.monitor.pictures import choose_mode
mode = choose_mode("auto")
from textual_image import _terminal  # an image mode asked the cell size already
cached = hasattr(_terminal.get_cell_size, "_result")
open(sys.argv[1], "w").write(f"{mode.name}|{mode.reason}|{cached}")
"""


def _in_a_terminal(
    tmp_path: Path, answers: dict[bytes, bytes], size=(24, 80, 800, 480)
) -> str:
    """Run choose_mode("auto") in a child on a real pseudo-terminal of ``size``
    (rows, columns, pixel width, pixel height); the parent is the terminal: it
    answers each query it reads that starts an ``answers`` key."""
    import fcntl
    import struct
    import termios

    result = tmp_path / "mode.txt"
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    pid, master = pty.fork()
    if pid == 0:  # the child: stdout and stdin are the pty
        rows, cols, width, height = size
        fcntl.ioctl(1, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, width, height))
        os.execve(sys.executable, [sys.executable, "-c", _CHILD, str(result)], env)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                for query, answer in answers.items():
                    if query in seen:
                        os.write(master, answer)
                        seen = seen.replace(query, b"", 1)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            os.kill(pid, 9)
            pytest.fail("the child did not finish")
    finally:
        os.close(master)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return result.read_text()


def test_auto_asks_a_real_terminal_sixel(tmp_path):
    # DA1 answer with attribute 4: Sixel graphics (xterm -ti vt340, foot, WezTerm)
    found = _in_a_terminal(tmp_path, {b"\x1b[c": b"\x1b[?62;4;22c"})
    assert found == "sixel|the terminal draws sixel images|True"


def test_auto_asks_a_real_terminal_kitty(tmp_path):
    # kitty: DA1 without Sixel, and the graphics protocol's query answered OK
    found = _in_a_terminal(
        tmp_path, {b"\x1b[c": b"\x1b[?62;22c", b"a=q": b"\x1b_Gi=31;OK\x1b\\"}
    )
    assert found == "tgp|the terminal draws tgp images|True"


def test_a_terminal_that_reports_no_size_keeps_half_blocks(tmp_path):
    # textual-image divides by the reported size: never a crash of the monitor
    found = _in_a_terminal(tmp_path, {b"\x1b[c": b"\x1b[?62;4;22c"}, (0, 0, 0, 0))
    assert found.startswith("halfblock|textual-image cannot read the terminal's cell")


def test_auto_with_a_terminal_that_answers_nothing(tmp_path):
    found = _in_a_terminal(tmp_path, {})
    assert found == "halfblock|the terminal draws neither Sixel nor kitty images|False"


def test_field_image_keeps_the_palette_colours_at_any_size():
    field = np.full((4, 6), np.nan, dtype=np.float32)
    field[0, :] = 52.0  # north row: 50-55 dBZ class
    field[1:, :3] = 0.0  # no echo
    field[1:, 3:] = 37.0
    image = field_image(field)
    assert (image.mode, image.size) == ("P", (6, 4))
    rgb = np.asarray(image.convert("RGB"))
    hexes = {"#%02x%02x%02x" % tuple(px) for px in rgb.reshape(-1, 3)}
    assert hexes == {COLOURS[i] for i in np.unique(classify(field))}
    assert "#%02x%02x%02x" % tuple(rgb[0, 0]) == "#fd0000"  # row 0 stays on top
    big = np.asarray(image.resize((60, 40)).convert("RGB"))  # what textual-image does
    assert {"#%02x%02x%02x" % tuple(px) for px in big.reshape(-1, 3)} == hexes
    with pytest.raises(ValueError, match="non-empty"):
        field_image(np.zeros((0, 3)))


@run_async
async def test_dashboard_draws_its_panels_as_sixel_images(tmp_path):
    settings = make_workspace(tmp_path, daemon="up")
    app = MonitorApp(settings, clock=lambda: NOW, live=False,
                     pictures=PictureMode("sixel", "test"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        forecast = app.query_one("#view-forecast")
        observed = app.query_one("#view-observed")
        assert isinstance(forecast, GraphicRadarView)
        assert not app.query(RadarView)  # no half-block view at all
        assert forecast.caption == "Forecast t+15 \u2192 12:55Z"
        picture = forecast.picture
        assert isinstance(picture, SixelImage)
        shown = np.asarray(picture.image.convert("RGB"))
        expected = classify(forecast.field.values)
        assert shown.shape[:2] == expected.shape  # the field's own resolution
        lut = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in COLOURS])
        np.testing.assert_array_equal(shown, lut[expected])
        assert picture.display and picture.size.width > 10 and picture.size.height > 5
        # square grid cells: a square field gets about twice as many columns as rows
        ny, nx = expected.shape
        assert picture.size.width / picture.size.height == pytest.approx(
            2 * nx / ny, rel=0.25)
        assert observed.picture.image is not None
        (impl,) = picture.children  # textual-image's Sixel encoder, as drawn
        sixels = impl._cached_sixels.sixel_data
        assert sixels.startswith("\x1bP") and sixels.endswith("\x1b\\")
        assert "#" in sixels  # colour registers: the palette's colours were sent
        before = picture.image
        await pilot.press("right_square_bracket")  # next lead: a new image
        await settle(pilot)
        assert forecast.caption.startswith("Forecast t+20")
        assert forecast.picture.image is not before


def test_monitor_refuses_an_unknown_pictures_option(capsys):
    with pytest.raises(SystemExit):
        main(["--pictures", "iterm"])
    assert "invalid choice" in capsys.readouterr().err
