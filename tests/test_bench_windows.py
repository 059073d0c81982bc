"""bench/skill.py: its windows of a real case at another step (radar-cases-steps)
and the table it prints."""

from __future__ import annotations

import sys
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from conftest import REPO, SHARED

sys.path.insert(0, str(REPO / "bench"))
from skill import case_sequences

STEPS = SHARED / "data" / "radar-cases-steps"


def _case(name: str) -> Path:
    case = STEPS / name
    if not any(case.glob("*/*.nc")):
        pytest.skip(f"shared radar cases not found under {STEPS}")
    return case


def test_a_two_minute_case_is_read_at_four_minutes_from_both_offsets():
    windows = list(case_sequences(_case("mrms-20190610-1"), resample=True))
    assert len(windows) == 2  # 36 scans: 18 a offset, one 15-scan window each
    firsts = set()
    for frames, times, dx in windows:
        assert frames.shape == (15, 1, 250, 250)
        assert {b - a for a, b in pairwise(times)} == {timedelta(minutes=4)}
        assert 1800 < dx < 2100  # the file's own x spacing, pooled 2 x 2
        firsts.add(times[0])
    assert len(firsts) == 2 and abs(firsts.pop() - firsts.pop()) == timedelta(minutes=2)
    # without resampling such a case has no 5-minute windows at all
    assert list(case_sequences(_case("mrms-20190610-1"))) == []


def test_a_ten_minute_case_keeps_its_step():
    windows = list(case_sequences(_case("bom66-20201031"), resample=True))
    assert len(windows) == 26  # 144 scans, 15-scan windows every 5 scans
    _, times, dx = windows[0]
    assert {b - a for a, b in pairwise(times)} == {timedelta(minutes=10)}
    assert dx == pytest.approx(1000.0)


def test_skill_table_scores_every_method_with_bias_and_pod(tmp_path):
    """bench/skill.py end to end on tiny simulated storms: CSI, frequency bias and
    the probability of detection at 50 dBZ, from the counts it summed."""
    import json
    import subprocess
    import sys

    out = tmp_path / "skill.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "skill.py"), "--real", "--synthetic", "1",
         "--size", "48", "--levels", "6", "--methods", "persistence",
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    values = []
    for group in ("advection", "multicell", "supercell"):
        res = results["groups"][f"synthetic {group}"]
        assert set(res) == {"sequences", "csi", "bias", "pod"}
        pod = res["pod"]["persistence@50"]
        assert len(pod) == 7
        values += [v for v in pod if v is not None and v == v]  # not NaN
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert "Probability of detection" in proc.stdout
