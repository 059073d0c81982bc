"""The loop: signals only set flags, the observer is supervised, `nowcast run` exits."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest

from daemon_support import (
    cell_scans,
    fake_provider,
    forecast_files,
    hidden_files,
    workspace,
    write,
    write_checkpoint,
)
from nowcast.cli import main
from nowcast.daemon import Daemon, run_loop
from nowcast.daemon.notify import Notifier
from nowcast.daemon.status_file import read_status


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield Notifier(str(path)), sock
    sock.close()


def messages(sock) -> list[str]:
    out = []
    while True:
        try:
            out += sock.recv(4096).decode().splitlines()
        except BlockingIOError:
            return out


def on_forecast(n: int, action):
    """A hook for the fake model: ``action()`` during its ``n``-th forecast."""
    calls = []

    def hook():
        calls.append(1)
        if len(calls) == n:
            action()

    return hook


def test_sigterm_during_a_step_finishes_it_and_exits_0(tmp_path, notify_socket):
    notifier, sock = notify_socket
    s = workspace(tmp_path)
    write_checkpoint(s, "good")
    for scan in cell_scans(8):
        write(s, scan)
    # call 1 is the test forecast at load; call 2 is the step's forecast
    kill = on_forecast(2, lambda: os.kill(os.getpid(), signal.SIGTERM))
    d = Daemon(s, provider=fake_provider(hook=kill))
    before = signal.getsignal(signal.SIGTERM)
    assert run_loop(d, notifier=notifier, max_steps=20) == 0
    assert signal.getsignal(signal.SIGTERM) is before  # handlers put back
    assert len(forecast_files(s)) == 7  # the step in hand was finished
    assert hidden_files(s.paths.output_dir) == []
    assert read_status(s.paths.status_file)["state"] == "stopped"
    got = messages(sock)
    assert got.index("READY=1") < got.index("STOPPING=1")
    assert "WATCHDOG=1" in got and any(m.startswith("STATUS=buffer") for m in got)


def test_sighup_reloads_the_configuration(tmp_path, notify_socket):
    notifier, sock = notify_socket
    s = workspace(tmp_path)
    write_checkpoint(s, "good")
    for scan in cell_scans(8):
        write(s, scan)
    cfg = s.source

    def hup():
        text = cfg.read_text().replace("[daemon]", '[daemon]\nfallback = "titan"')
        cfg.write_text(text)
        os.kill(os.getpid(), signal.SIGHUP)

    d = Daemon(s, provider=fake_provider(hook=on_forecast(2, hup)))
    assert run_loop(d, notifier=notifier, max_steps=2) == 0
    assert d.settings.daemon.fallback == "titan"
    assert d.models.current is not None  # the model was loaded again
    assert "RELOADING=1" in messages(sock)


class DyingObserver:
    """An observer thread that is dead as soon as it started."""

    built = 0

    def __init__(self, lives: bool = False) -> None:
        type(self).built += 1
        self.lives = lives
        self.started = False

    def start(self):
        self.started = True

    def is_alive(self):
        return self.lives

    def stop(self):
        self.lives = False

    def join(self, timeout=None):
        pass


def test_a_dead_observer_is_restarted_then_the_loop_exits_1(tmp_path, notify_socket):
    notifier, sock = notify_socket
    s = workspace(tmp_path, observer_restarts=2, poll_interval_s=0.01)
    DyingObserver.built = 0
    d = Daemon(s, provider=fake_provider())
    assert run_loop(d, notifier=notifier, observer_factory=DyingObserver) == 1
    assert DyingObserver.built == 3  # the first and two restarts
    got = messages(sock)
    assert "READY=1" in got and "WATCHDOG=1" not in got  # never healthy
    assert read_status(s.paths.status_file)["errors"]["recent"][-1]["kind"] == (
        "watcher"
    )


def test_a_restarted_observer_keeps_the_loop_going(tmp_path, notify_socket):
    notifier, sock = notify_socket
    s = workspace(tmp_path, observer_restarts=1, poll_interval_s=0.01)
    DyingObserver.built = 0

    def factory():
        return DyingObserver(lives=DyingObserver.built >= 1)

    d = Daemon(s, provider=fake_provider())
    assert run_loop(d, notifier=notifier, observer_factory=factory, max_steps=3) == 0
    assert DyingObserver.built == 2
    assert "WATCHDOG=1" in messages(sock)


def test_config_error_exits_78(tmp_path, capsys):
    s = workspace(tmp_path)
    s.paths.input_dir.rmdir()
    assert main(["run", "--config", str(s.source)]) == 78
    assert "paths.input_dir" in capsys.readouterr().err


def _nowcast(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "nowcast")
    return [exe, *map(str, args)]


def test_sigterm_stops_a_real_nowcast_run(tmp_path):
    s = workspace(tmp_path, fallback="persistence", verify_baselines=["persistence"])
    scans = cell_scans(9)
    for scan in scans[:8]:
        write(s, scan)
    proc = subprocess.Popen(
        _nowcast("run", "--config", s.source, "--log-format", "json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )

    def wait_forecasts(n: int) -> None:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.poll() is None:
            if s.paths.status_file.exists():
                if read_status(s.paths.status_file)["forecasts_written"] >= n:
                    return
            time.sleep(0.05)
        raise AssertionError(proc.communicate(timeout=5) if proc.poll() else n)

    try:
        wait_forecasts(1)  # the scans on disk at start-up
        write(s, scans[8])  # seen by the real observer
        wait_forecasts(2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    status = read_status(s.paths.status_file)
    assert status["state"] == "stopped" and status["forecasts_written"] == 2
    assert len(forecast_files(s)) == 14
    assert status["verification"]["csi"].keys() == {"persistence"}
    assert '"kind": "daemon_stopped"' in out  # logs go to stdout for journald


def test_a_full_disk_is_survived_and_leaves_no_partial_file(tmp_path):
    """RLIMIT_FSIZE makes every write past 16 kB fail (EFBIG), like a full disk."""
    s = workspace(tmp_path, fallback="persistence", verify_baselines=[])
    for scan in cell_scans(8):
        write(s, scan)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, resource.RLIM_INFINITY))

    done = subprocess.run(
        _nowcast("run", "--once", "--config", s.source, "--log-format", "json"),
        capture_output=True, text=True, timeout=60, preexec_fn=limit,
    )
    assert done.returncode == 1, done.stderr
    assert "forecast_failed" in done.stdout
    assert forecast_files(s) == []
    assert hidden_files(tmp_path) == []
    assert read_status(s.paths.status_file)["state"] == "stopped"


def test_a_vanished_input_folder_makes_the_loop_exit_1(tmp_path):
    """The real inotify observer goes deaf when its folder goes; it is restarted,
    that fails, and the loop exits non-zero so that systemd restarts the unit."""
    import shutil
    import threading

    s = workspace(tmp_path, observer_restarts=1, poll_interval_s=0.05)
    d = Daemon(s, provider=fake_provider())
    timer = threading.Timer(0.5, shutil.rmtree, [s.paths.input_dir])
    timer.start()
    try:
        assert run_loop(d, notifier=Notifier(environ={}), max_steps=300) == 1
    finally:
        timer.cancel()
    kinds = [e["kind"] for e in read_status(s.paths.status_file)["errors"]["recent"]]
    assert kinds.count("watcher") >= 2
