"""bench/skill.py's windows of a real case at another step (radar-cases-steps)."""

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
