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


def test_demo_runs_the_shipped_model_and_shows_its_training(tmp_path):
    """The README's demo as shipped: models/demo3d.pt forecasts (18 levels), and
    its training history is in the workspace's store for the monitor."""
    from pathlib import Path

    from nowcast.store import MetricsReader

    shipped = Path(__file__).resolve().parents[1] / "models" / "demo3d.pt"
    assert shipped.is_file(), "models/demo3d.pt is not shipped"
    work = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "nowcast.cli", "demo", "--duration", "80",
         "--every", "2.5", "--size", "64", "--levels", "18", "--workdir", str(work)],
        capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr + (work / "daemon.log").read_text()
    assert f"model: {shipped}" in out
    assert "forecast by model" in out, out
    assert "its training:" in out
    with MetricsReader(work / "state" / "nowcast.sqlite") as reader:
        runs = reader.training_runs()
        epochs = reader.epochs(runs[-1]["run_id"])
        latest = reader.latest_forecast("model")
    assert runs and all(r["status"] == "completed" for r in runs)
    assert {e["phase"] for e in epochs} == {1, 2, 3}
    assert latest is not None and latest["model"] == "demo3d.pt"
