"""``nowcast demo`` never leaves its daemon behind: stopped by a signal, or killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faults.conftest import record


def _as_in_a_terminal() -> None:
    """In the demo child: SIGINT at its default, as a shell gives a command run in
    the foreground. A suite started in the background (``nohup ... &``) ignores
    SIGINT, the child would inherit that, and Python then installs no Ctrl-C
    handler: the test must not depend on how pytest was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _demo(workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nowcast.cli", "demo", "--duration", "600",
         "--every", "1", "--size", "32", "--levels", "3", "--workdir", str(workdir),
         "--model", str(workdir / "no-model.pt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=_as_in_a_terminal,
    )


def _daemon_pid(workdir: Path, demo: subprocess.Popen, timeout: float = 60) -> int:
    status = workdir / "state" / "status.json"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            data = json.loads(status.read_text())
            if data.get("state") == "running":
                return int(data["pid"])
        except (OSError, ValueError, KeyError):
            pass
        assert demo.poll() is None, "the demo exited early"
        time.sleep(0.2)
    raise AssertionError("the demo's daemon never said it was running")


def _gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split()[2] == "Z":
                    return True  # a zombie: exited, waiting for its reaper
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_the_demo_stops_its_daemon_on_a_signal(tmp_path, sig):
    demo = _demo(tmp_path / "demo")
    try:
        pid = _daemon_pid(tmp_path / "demo", demo)
        demo.send_signal(sig)
        demo.wait(90)
        assert _gone(pid, 30), "the daemon outlived its demo"
    finally:
        if demo.poll() is None:
            demo.kill()
    record(f"nowcast demo stopped with {sig.name}", "the signal to the demo",
           "the demo stops its daemon and exits")


def test_the_daemon_exits_when_its_demo_is_killed(tmp_path):
    demo = _demo(tmp_path / "demo")
    pid = _daemon_pid(tmp_path / "demo", demo)
    demo.kill()  # SIGKILL: no handler runs in the demo
    demo.wait(30)
    try:
        assert _gone(pid, 60), "the daemon outlived its demo"
    finally:
        if not _gone(pid, 0.1):
            os.kill(pid, signal.SIGKILL)
    record("nowcast demo killed (SIGKILL)", "kill -9 the demo",
           "its daemon gets SIGTERM from the kernel and exits")
