"""``nowcast demo`` end to end: simulator -> real daemon subprocess -> verified forecasts."""

from __future__ import annotations

import subprocess
import sys

from nowcast.radar import read_latest_data_info


def test_demo_produces_verified_forecasts(tmp_path):
    work = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "nowcast.cli", "demo", "--duration", "75",
         "--every", "2.5", "--size", "64", "--levels", "3", "--workdir", str(work),
         "--model", str(tmp_path / "no-model.pt")],
        capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr + (work / "daemon.log").read_text()
    assert "forecast by extrapolation" in out
    assert "leads verified" in out
    assert f"nowcast-monitor --config {work / 'config.toml'}" in out
    info = read_latest_data_info(work / "titan" / "nowcast")
    assert info.is_forecast and info.lead_s == 2100
    assert (work / "titan" / "nowcast" / info.rel_data_path).is_file()
    assert (work / "state" / "status.json").is_file()
