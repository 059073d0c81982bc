"""bench/gpu_train.sh, the GPU lane of issue 13, end to end in its tiny CPU mode.

The script trains both shipped models from their weights on a lent GPU; here it
runs the same steps (cache archive unpacked, flows computed, warm starts, both
curricula, exports, table) on four real cases at tiny sizes, as a subprocess,
so the device run does not meet its first error there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import RADAR_CASES, RADAR_CASES_MORE, RADAR_CASES_STEPS, REPO
from nowcast.model.checkpoint import load_checkpoint, load_model
from nowcast.model.factory import build_network

CASES = {
    "radar-cases": ["fmi-20160928"],
    "radar-cases-more": ["knmi-20210101", "knmi-20210102", "unica-20190412_1220"],
    "radar-cases-steps": ["bom66-20201031"],
}
ROOTS = {
    "radar-cases": RADAR_CASES,
    "radar-cases-more": RADAR_CASES_MORE,
    "radar-cases-steps": RADAR_CASES_STEPS,
}


def _tiny_data(tmp_path: Path) -> list[Path]:
    """Data dirs named like the real ones, holding links to four cases."""
    dirs = []
    for name, cases in CASES.items():
        root = ROOTS[name].resolve()
        missing = [c for c in cases if not (root / c).is_dir()]
        if missing:
            pytest.skip(f"shared radar cases not found: {root / missing[0]}")
        d = tmp_path / "data" / name
        d.mkdir(parents=True)
        for case in cases:
            (d / case).symlink_to(root / case, target_is_directory=True)
        dirs.append(d)
    return dirs


def test_gpu_train_script_tiny_on_the_cpu(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "PYTHON": sys.executable,
        "NOWCAST_DAEMON__MAX_GAP_FACTOR": "5",  # as the script's header packs it
    }
    archive = tmp_path / "cache.tar.xz"
    pack = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "gpu_train.py"),
            "pack",
            str(archive),
            "--data",
            *map(str, _tiny_data(tmp_path)),
        ],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pack.returncode == 0, pack.stderr[-2000:]
    assert "5 cases" in pack.stdout

    out = tmp_path / "out"
    env.update(
        GPU_TRAIN_TINY="1",
        OUT=str(out),
        GPU_TRAIN_WORK=str(tmp_path / "work"),
        GPU_TRAIN_CACHE_ARCHIVE=str(archive),
    )
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_train.sh")],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, log
    assert "imports ok" in (out / "prep.log").read_text()

    for name, levels in (("real2d", 1), ("demo3d", 18)):
        state = load_checkpoint(out / f"{name}.pt")
        assert state["phase"] == 3 and state["finished"], name
        assert state["optimizer"] is None  # an export, not a _last
        assert state["data"]["levels"] == [levels]
        shipped = load_checkpoint(REPO / "models" / f"{name}.pt")
        # the shipped architecture, with constructor keywords added since it
        # was saved at their defaults (as load_model rebuilds it)
        assert state["init_kwargs"] == build_network(**shipped["init_kwargs"]).init_kwargs
        # the shipped model's history, then this run's (from its warm start)
        runs = state["history"]
        assert len(runs) == len(shipped["history"]) + 1
        assert "--resume-from" in runs[-1]["command"]
        assert runs[-1]["status"] == "completed"
        net, _meta = load_model(out / f"{name}.pt")
        assert sum(p.numel() for p in net.parameters()) == 219_243

    rows = {r["model"]: r for r in json.loads((out / "train_summary.json").read_text())}
    assert set(rows) == {"real2d", "demo3d"}
    for r in rows.values():
        assert r["rc"] == 0 and r["salvaged_from"] is None
        assert r["epochs"] == 3 and r["samples_seen"] > 0
        assert r["device"] == "cpu"
    assert rows["real2d"]["holdout_csi35"] is not None  # radar-cases held out
    table = (out / "train_table.md").read_text()
    assert table.startswith("| model | rc | epochs | samples seen | wall s |")
    assert "| real2d | 0 | 3 |" in table and "| demo3d | 0 | 3 |" in table
    bench = (out / "gpu_bench.txt").read_text()
    assert "infer rc 0" in bench and "train rc 0" in bench, bench[-2000:]
    # real2d trained with the prior it forecasts with, validated on radar-cases-steps
    real = load_checkpoint(out / "real2d.pt")
    curriculum = json.loads(real["config"])["curriculum"]
    assert curriculum["storm_prior"] is True and curriculum["select_by"] == "csi20_35"
    assert curriculum["residual_lr_scale"] == 1.0
    assert "--validate radar-cases-steps" in real["history"][-1]["command"]
    # what comes back from the device: 8 files at most, none in a folder
    assert len(list(out.iterdir())) <= 8
    assert all(p.is_file() for p in out.iterdir())
