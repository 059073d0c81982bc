"""The fault suite's harness: a real ``nowcast run`` process on real directories.

Every case starts the daemon as operators do (``python -m nowcast.cli run
--config FILE``, JSON logs to a file), feeds it real NetCDF scans the way a
radar's gridder does (a hidden temporary file, then a rename), attacks it, and
checks what must hold from the outside: the files in the output, ``rejected/``
and ``status.json``, the log lines, the process's exit status and open files.
Each case records one row (fault, what was done, what must hold, held or not);
the session prints the table at the end.

Scans are small (3 levels, 32 x 32, pooled 2 x) and the fallback forecaster is
``extrapolation`` (pysteps' Lucas-Kanade), with no model: the daemon's defaults
otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import moving_cell_scans
from nowcast.radar import Scan, scan_rel_path, write_scan

NZ, SIZE = 3, 32
#: scan times start here: well in the past, so none is "ahead of the clock"
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)

ROWS: list[tuple[str, str, str, str]] = []


def record(fault: str, done: str, must: str, held: bool = True) -> None:
    """One row of the printed table (call it once a case's asserts passed)."""
    ROWS.append((fault, done, must, "held" if held else "FAILED"))


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    tr = terminalreporter
    tr.section("daemon faults: what was done and what held")
    tr.write_line("| fault | what was done | what must hold | |")
    tr.write_line("| --- | --- | --- | --- |")
    for row in ROWS:
        tr.write_line("| " + " | ".join(row) + " |")


def scans(n: int, start: datetime = T0, size: int = SIZE) -> list[Scan]:
    return moving_cell_scans(n=n, nz=NZ, size=size, start=start)


class DaemonUnderTest:
    """A workspace and the real daemon process running on it."""

    def __init__(self, root: Path, **daemon: object) -> None:
        self.root = root
        self.input = root / "scans"
        self.output = root / "out"
        self.state = root / "state"
        self.rejected = root / "rejected"
        self.archive = root / "archive"
        self.status_file = self.state / "status.json"
        self.log_path = root / "daemon.log"
        self.input.mkdir(parents=True, exist_ok=True)
        opts = {
            "quiet_s": 0.3, "reconcile_interval_s": 2.0, "poll_interval_s": 0.2,
            "retry_interval_s": 1.0, **daemon,
        }
        self.config = root / "config.toml"
        self.write_config(opts)
        self.proc: subprocess.Popen | None = None

    def write_config(self, daemon: dict, extra: str = "") -> None:
        def toml(v):
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, str):
                return json.dumps(v)
            return repr(v)

        lines = "\n".join(f"{k} = {toml(v)}" for k, v in daemon.items())
        self.config.write_text(textwrap.dedent(f"""\
            [paths]
            input_dir = "{self.input}"
            output_dir = "{self.output}"
            state_dir = "{self.state}"
            archive_dir = "{self.archive}"
            rejected_dir = "{self.rejected}"
            store = "{self.state}/nowcast.sqlite"
            status_file = "{self.status_file}"
            production_model = "{self.root}/models/production.pt"
            [retrain]
            enabled = false
            [daemon]
            """) + lines + "\n" + extra)

    # -- the process ---------------------------------------------------------------

    def start(self, *, wait: bool = True) -> DaemonUnderTest:
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nowcast.cli", "run", "--config",
             str(self.config), "--log-format", "json"],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if wait:
            self.wait_for(lambda: self.state_is("running"), 60, "the daemon to start")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- looking at it ---------------------------------------------------------------

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def state_is(self, state: str) -> bool:
        return self.status().get("state") == state

    def events(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def lines(self, kind: str | None = None) -> list[str]:
        return [
            e.get("event", "") for e in self.events()
            if kind is None or e.get("kind") == kind
        ]

    def issues(self) -> list[str]:
        """The forecast sets in the output, ``yyyymmdd/g_hhmmss`` (visible ones)."""
        return sorted(
            f"{p.parent.name}/{p.name}" for p in self.output.glob("*/g_*") if p.is_dir()
        )

    def complete_sets(self, n_leads: int = 7) -> list[str]:
        return [
            s for s in self.issues()
            if len(list((self.output / s).glob("f_*.nc"))) == n_leads
        ]

    def hidden_in_output(self) -> list[Path]:
        return [p for p in self.output.rglob(".*")] if self.output.exists() else []

    def rejected_reasons(self) -> dict[str, str]:
        return {
            p.name.removesuffix(".reason"): p.read_text().splitlines()[0]
            for p in self.rejected.rglob("*.reason")
        }

    def deleted_fds(self) -> list[str]:
        out = []
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.endswith("(deleted)"):
                out.append(target)
        return out

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"the daemon exited ({self.proc.returncode}) while waiting for "
                    f"{what}; log:\n{self.log_path.read_text()[-3000:]}"
                )
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}; log:\n"
            f"{self.log_path.read_text()[-3000:]}"
        )

    # -- feeding it --------------------------------------------------------------

    def feed(self, scan: Scan, name: str | None = None, sub: str | None = None) -> Path:
        """Write a scan as a gridder does: a hidden temporary, then a rename."""
        target = self.input / (sub or scan_rel_path(scan.time))
        if name is not None:
            target = target.with_name(name)
        staging = self.root / "staging"
        tmp = write_scan(scan, staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        hidden = target.with_name(f".{target.name}.part")
        shutil.move(tmp, hidden)
        os.rename(hidden, target)
        return target

    def feed_run(self, items: list[Scan], every: float = 0.4) -> list[Path]:
        out = []
        for scan in items:
            out.append(self.feed(scan))
            time.sleep(every)
        return out

    def issue_of(self, scan: Scan) -> str:
        t = scan.time
        return f"{t:%Y%m%d}/g_{t:%H%M%S}"


@pytest.fixture
def daemon_factory(tmp_path):
    started: list[DaemonUnderTest] = []

    def make(sub: str = "ws", **daemon) -> DaemonUnderTest:
        d = DaemonUnderTest(tmp_path / sub, **daemon)
        started.append(d)
        return d

    yield make
    for d in started:
        if d.alive():
            d.stop(signal.SIGKILL, timeout=10)


def past(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)
