"""``nowcast simulate``: scans in the input contract, read back; real-time pacing."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from nowcast.cli import main
from nowcast.commands import simulate
from nowcast.radar import read_scan, scan_rel_path
from nowcast.synthetic import DEFAULT_START, REGIMES, Simulator, generate_sequence

SMALL = ["--size", "32", "--levels", "4"]


def test_writes_scans_that_read_back(tmp_path, capsys):
    rc = main(["simulate", "--out", str(tmp_path), "--regime", "supercell",
               "--scans", "3", "--seed", "5", "--interval-s", "300", *SMALL])
    assert rc == 0
    assert "wrote 3 supercell scans" in capsys.readouterr().out
    seq = generate_sequence("supercell", 3, seed=5, size=32, levels=4, interval_s=300)
    files = sorted(tmp_path.rglob("*.nc"))
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        scan_rel_path(t) for t in seq.times
    ]
    assert files[0].name == "ncf_20240601_120000.nc"  # the documented default start
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp
    for path, t, frame in zip(files, seq.times, seq.frames):
        scan = read_scan(path)
        assert scan.time == t
        assert scan.dbz.shape == (4, 32, 32)
        np.testing.assert_allclose(scan.dbz, frame, atol=0.006)  # int16, 0.01 dBZ
        assert scan.grid.origin is not None
        assert scan.grid.mapping_attrs["grid_mapping_name"] == "azimuthal_equidistant"


def test_start_option_and_config_defaults(tmp_path):
    cfg = tmp_path / "site.toml"
    cfg.write_text("[synthetic]\nsize = 24\nlevels = 3\n[grid]\ninterval_s = 600\n")
    out = tmp_path / "scans"
    rc = main(["simulate", "--config", str(cfg), "--out", str(out), "--scans", "2",
               "--start", "2025-01-02T03:04:00Z", "--regime", "advection"])
    assert rc == 0
    files = sorted(out.rglob("*.nc"))
    names = [f.name for f in files]
    assert names == ["ncf_20250102_030400.nc", "ncf_20250102_031400.nc"]
    assert read_scan(files[0]).dbz.shape == (3, 24, 24)


def test_start_time_rules():
    now = datetime(2025, 5, 5, 10, 7, 31, tzinfo=timezone.utc)
    assert simulate.start_time(None, True, 300, now) == now.replace(minute=5, second=0)
    assert simulate.start_time(None, False, 300, now) is None  # -> DEFAULT_START
    assert simulate.start_time("2025-01-01T00:00", False, 300, now) == datetime(
        2025, 1, 1, tzinfo=timezone.utc
    )
    with pytest.raises(ValueError, match="ISO"):
        simulate.start_time("yesterday", False, 300, now)


def test_realtime_paces_scans_with_a_fake_clock(tmp_path):
    sim = Simulator("multicell", 4, seed=1, size=24, levels=2, interval_s=300)
    now = [100.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    written_at = []
    simulate.feed(
        sim, tmp_path, realtime=True, speedup=100.0, clock=lambda: now[0],
        sleep=sleep, on_write=lambda k, scan, path: written_at.append(now[0]),
    )
    assert written_at == pytest.approx([100.0, 103.0, 106.0, 109.0])
    assert sum(slept) == pytest.approx(9.0)
    times = [read_scan(p).time for p in sorted(tmp_path.rglob("*.nc"))]
    assert times == [DEFAULT_START + timedelta(seconds=300 * k) for k in range(4)]


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path), "--scans", "0", *SMALL]) == 1
    assert "at least 1" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path), "--realtime", "--speedup", "0",
                 *SMALL]) == 1
    assert "--speedup" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--out", str(tmp_path), "--regime", "hurricane"])
    assert info.value.code == 2
    assert simulate.REGIME_CHOICES == (*REGIMES, "mixed")


def test_real_subprocess_realtime_feed(tmp_path):
    began = datetime.now(timezone.utc)
    proc = subprocess.run(
        [sys.executable, "-m", "nowcast.cli", "simulate", "--out", str(tmp_path),
         "--regime", "mixed", "--scans", "3", "--seed", "2", "--realtime",
         "--interval-s", "300", "--speedup", "1500", "--log-format", "json", *SMALL],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote 3 mixed scans" in proc.stdout
    assert proc.stderr.count('"scan written"') == 3
    files = sorted(tmp_path.rglob("*.nc"))
    assert len(files) == 3
    times = [read_scan(f).time for f in files]
    assert times[1] - times[0] == timedelta(seconds=300)
    # real time: the first scan is "now" rounded down to the interval
    assert timedelta(0) <= began - times[0] < timedelta(seconds=301)
    assert times[0].timestamp() % 300 == 0
