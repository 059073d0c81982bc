"""Training data: archive cache, windows, classes, split, datasets, sampler."""

from __future__ import annotations

import itertools
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import RADAR_CASES, moving_cell_scans
from nowcast.curriculum import archive_cache_build as build_mod
from nowcast.curriculum.archive_cache import ArchiveCache, decode_dbz, encode_dbz
from nowcast.curriculum.archive_cache_build import build_cache
from nowcast.curriculum.augment import Dihedral, apply
from nowcast.curriculum.classify import (
    ADVECTION,
    MULTICELL,
    SUPERCELL,
    RegimeRule,
    classify_window,
    vote,
)
from nowcast.curriculum.datasets import (
    ArchiveSequenceDataset,
    SyntheticSequenceDataset,
)
from nowcast.curriculum.sampling import BalancedBatchSampler, class_balanced_indices
from nowcast.curriculum.windows import Window, find_windows, split_windows
from nowcast.radar import Scan, pool, read_scan, write_scan

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
SIZE = 48  # pooled to 24 x 24


def _scans(n: int, start: datetime) -> list[Scan]:
    scans = moving_cell_scans(n=n, nz=2, size=SIZE, speed_px=(2.0, 0.0), start=start)
    out = []
    for s in scans:
        dbz = s.dbz.copy()
        dbz[:, :6, :6] = np.nan  # a corner without coverage
        out.append(Scan(s.time, dbz, s.grid))
    return out


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """``data/caseA``: 17 scans, an hour's gap, 3 scans, one corrupt file;
    ``data/caseB``: 2 scans."""
    root = tmp_path_factory.mktemp("data")
    for s in _scans(17, T0) + _scans(3, T0 + timedelta(hours=2)):
        write_scan(s, root / "caseA")
    (root / "caseA" / "20240601" / "ncf_20240601_133000.nc").write_bytes(b"junk")
    for s in _scans(2, T0):
        write_scan(s, root / "caseB")
    return root


@pytest.fixture(scope="module")
def cache(archive, tmp_path_factory) -> ArchiveCache:
    return build_cache([archive], tmp_path_factory.mktemp("cache"))


# -- encoding and cache --------------------------------------------------------


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    dbz = rng.uniform(0.0, 120.0, (3, 20, 20)).astype(np.float32)
    dbz[0, :3] = np.nan
    codes = encode_dbz(dbz)
    assert codes.dtype == np.uint8
    back = decode_dbz(codes)
    assert back.dtype == np.float32
    assert np.array_equal(np.isnan(back), np.isnan(dbz))
    assert np.nanmax(np.abs(back - dbz)) <= 0.25 + 1e-6
    assert (codes[np.isnan(dbz)] == 0).all() and (codes[~np.isnan(dbz)] >= 1).all()
    # clipped outside [floor, floor + 127]; another floor shifts the range
    assert decode_dbz(encode_dbz(np.array([-5.0, 200.0])))[0] == 0.0
    assert decode_dbz(encode_dbz(np.array([-5.0, 200.0])))[1] == 127.0
    assert decode_dbz(encode_dbz(np.array([-32.0]), -32.0), -32.0)[0] == -32.0


def test_cache_build_cases_runs_and_frames(cache, archive):
    assert set(cache.cases) == {f"{archive.name}/caseA", f"{archive.name}/caseB"}
    case = cache.cases[f"{archive.name}/caseA"]
    assert case.shape == (20, 2, SIZE // 2, SIZE // 2)
    assert case.dx_m == pytest.approx(2000.0)
    assert case.runs == ((0, 17), (17, 20))
    assert list(case.times) == sorted(case.times)
    assert cache.stats.rejected == 1 and cache.stats.read == 22
    assert any("ncf_20240601_133000" in e for e in cache.stats.errors)
    codes = cache.codes(case.key)
    assert codes.dtype == np.uint8 and isinstance(codes, np.memmap)
    expected = pool(read_scan(case.paths[4]).dbz, 2)
    got = cache.dbz(case.key, 4, 5)[0]
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.nanmax(np.abs(got - expected)) <= 0.25 + 1e-5
    reopened = ArchiveCache.open(cache.cache_dir)
    assert reopened.cases == cache.cases
    assert np.array_equal(reopened.codes(case.key), codes)


def test_incremental_rebuild_reads_only_new_files(archive, tmp_path, monkeypatch):
    calls = []
    real = build_mod.read_pooled

    def counting(path, *a, **k):
        calls.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(build_mod, "read_pooled", counting)
    data = tmp_path / "data"
    for s in _scans(4, T0):
        write_scan(s, data / "caseC")
    (data / "caseC" / "bad.nc").write_bytes(b"not netcdf")
    first = build_cache([data], tmp_path / "cache")
    assert len(calls) == 5 and first.stats.rejected == 1
    calls.clear()
    again = build_cache([data], tmp_path / "cache")
    assert calls == [] and again.stats.reused == 4 and again.stats.cases_rebuilt == 0
    assert again.cases == first.cases
    old_codes = np.array(first.codes(f"{data.name}/caseC"))
    # one new scan: only it is read; the old frames are kept
    new = _scans(5, T0)[-1]
    write_scan(new, data / "caseC")
    third = build_cache([data], tmp_path / "cache")
    assert calls == ["ncf_20240601_122000.nc"]
    key = f"{data.name}/caseC"
    assert third.cases[key].n_frames == 5
    assert np.array_equal(third.codes(key)[:4], old_codes)
    assert len(list((tmp_path / "cache" / "frames").glob("*.npy"))) == 1
    # a case that disappears is dropped with its file
    file = tmp_path / "cache" / third.cases[key].file
    for p in sorted((data / "caseC").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (data / "caseC").rmdir()
    (data / "caseD").mkdir()
    assert build_cache([data], tmp_path / "cache").cases == {}
    assert not file.exists()


# -- windows, classes, split ---------------------------------------------------


def test_windows_of_15_and_stride(cache, archive):
    key = f"{archive.name}/caseA"
    ws = find_windows(cache)
    assert [(w.case, w.start) for w in ws] == [(key, 0), (key, 1), (key, 2)]
    assert all(w.n_frames == 15 and w.levels == 2 for w in ws)
    assert ws[1].time == T0 + timedelta(minutes=5)
    assert [w.start for w in find_windows(cache, stride=2)] == [0, 2]
    short = find_windows(cache, n_input=2, n_output=1, stride=1, cases=[key])
    assert short[-1].start == 17


def _fake_windows(
    case: str, n_frames: int, length: int = 15, day: int = 0
) -> list[Window]:
    t0 = T0 + timedelta(days=day)
    return [
        Window(case, s, length, t0 + timedelta(minutes=5 * s), s % 3, 2.0, 1)
        for s in range(n_frames - length + 1)
    ]


@pytest.mark.parametrize("mode", ["tail", "blocks"])
def test_time_block_split_has_no_overlap(mode):
    ws = _fake_windows("d/a", 200) + _fake_windows("d/b", 40) + _fake_windows("e/c", 50)
    split = split_windows(
        ws, mode=mode, block_frames=30, validation_stride=5, holdout_cases=["c"]
    )
    assert split.train and split.validation
    assert {w.case for w in split.holdout} == {"e/c"}
    assert [w.start for w in split.holdout] == list(range(0, 36, 5))
    for case in ("d/a", "d/b"):

        def frames(ws, case=case):
            return {f for w in ws if w.case == case for f in range(w.start, w.stop)}

        assert not frames(split.train) & frames(split.validation)
    starts = sorted(w.start for w in split.validation if w.case == "d/a")
    assert all(b - a >= 5 for a, b in itertools.pairwise(starts))
    n_split = len(split.train) + len(split.validation) + len(split.holdout)
    assert n_split + split.dropped <= len(ws)
    by_key = split_windows(ws, holdout_cases=["d/b"])
    assert {w.case for w in by_key.holdout} == {"d/b"}


def test_split_validates_on_the_cases_asked_for():
    # --validate: those cases whole (thinned) to validation, the rest whole to
    # training, whatever the mode; a held-out case stays held out
    ws = [w for i in range(4) for w in _fake_windows(f"d/c{i}", 40, day=i)]
    ws += _fake_windows("steps/m1", 30) + _fake_windows("steps/m2", 30)
    for mode in ("tail", "cases"):
        split = split_windows(
            ws,
            mode=mode,
            validation_cases=["steps", "steps/m1", "m2", "c3"],
            holdout_cases=["c3"],
            validation_stride=5,
        )
        assert {w.case for w in split.validation} == {"steps/m1", "steps/m2"}
        assert [w.start for w in split.validation if w.case == "steps/m1"] == [
            0,
            5,
            10,
            15,
        ]
        assert {w.case for w in split.holdout} == {"d/c3"}
        assert len(split.train) == 3 * 26 and split.dropped == 0


def test_split_by_whole_cases():
    # case c<i> is on day 9 - i: c0 is the latest
    ws = [w for i in range(10) for w in _fake_windows(f"d/c{i}", 20, day=9 - i)]
    split = split_windows(ws, mode="cases", validation_fraction=0.2)
    assert split.dropped == 0 and not split.holdout
    assert {w.case for w in split.validation} == {"d/c0", "d/c5"}
    assert {w.case for w in split.train}.isdisjoint({"d/c0", "d/c5"})
    assert len(split.train) == 8 * 6
    assert [w.start for w in split.validation] == [0, 5] * 2


def _cell(field, cy, cx, radius_px, peak):
    yy, xx = np.mgrid[0 : field.shape[0], 0 : field.shape[1]]
    r = np.hypot(yy - cy, xx - cx) / radius_px
    np.maximum(field, np.where(r <= 1, peak - 15 * r, 0.0), out=field)


def test_classification_rule_on_constructed_fields():
    rule = RegimeRule()
    big = np.zeros((100, 100), np.float32)
    _cell(big, 50, 50, 10, 55.0)  # ~300 km2 at 2 km, 55 dBZ
    assert rule.classify_frame(big, 2.0) == SUPERCELL
    four = np.zeros((100, 100), np.float32)
    for cy, cx in ((20, 20), (20, 80), (80, 20), (80, 80)):
        _cell(four, cy, cx, 3, 44.0)
    assert rule.classify_frame(four, 2.0) == MULTICELL
    wide = np.zeros((100, 100), np.float32)
    wide[:, :60] = 25.0
    assert rule.classify_frame(wide, 2.0) == ADVECTION
    embedded = wide.copy()
    _cell(embedded, 50, 30, 2, 42.0)
    _cell(embedded, 20, 30, 2, 42.0)
    assert rule.classify_frame(embedded, 2.0) == ADVECTION  # stratiform share
    # the same big cell on a 240 m grid is the same area in km2
    assert RegimeRule(supercell_km2=1e4).classify_frame(big, 2.0) == ADVECTION
    frames = np.stack([big, big, four, wide, big])[:, None]
    assert classify_window(frames, 2.0) == SUPERCELL
    assert vote([0, 1, 1, 0]) == MULTICELL and vote([0, 0, 2]) == ADVECTION


# -- datasets --------------------------------------------------------------------


def test_archive_dataset_sample(cache, archive):
    ws = find_windows(cache)
    ds = ArchiveSequenceDataset(cache, ws)
    s = ds[0]
    assert s["inputs"].shape == (8, 2, 24, 24) and s["inputs"].dtype == torch.float32
    assert s["targets"].shape == (7, 2, 24, 24) and s["mask"].shape == (7, 2, 24, 24)
    assert s["flow"].shape == (2, 24, 24) and s["motion"].shape == (7, 2, 24, 24)
    assert 0.0 <= float(s["inputs"].min()) and float(s["inputs"].max()) <= 1.0
    assert float(s["inputs"].max()) > 0.5  # the 55 dBZ core
    assert (s["mask"][:, :, :3, :3] == 0).all() and (s["mask"][:, :, 5:, 5:] == 1).all()
    assert (s["targets"][s["mask"] == 0] == 0).all()
    assert float(s["has_motion"]) == 0.0 and not s["motion"].any()
    assert s["source"].startswith(f"{archive.name}/caseA@2024-06-01T12:00")
    assert float(s["dx_km"]) == pytest.approx(2.0)
    # the LK prior is cached and sees the cell move +x (1 px/step pooled)
    assert cache.has_flow(ws[0].case, 7)
    core = s["inputs"][7].amax(0) > 0.3
    assert float(s["flow"][0][core].mean()) > 0.3
    assert abs(float(s["flow"][1][core].mean())) < 0.3
    assert torch.equal(ds[0]["flow"], s["flow"])
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    batch = next(iter(loader))
    assert batch["inputs"].shape == (2, 8, 2, 24, 24) and len(batch["source"]) == 2


def test_synthetic_dataset_determinism_and_shapes():
    kw = {"size": 32, "levels": 3, "dx_km": 2.0, "seed": 5, "flow": "true"}
    ds = SyntheticSequenceDataset(6, **kw)
    again = SyntheticSequenceDataset(6, **kw)
    assert list(ds.classes) == [0, 1, 2, 0, 1, 2]
    a, b = ds[4], again[4]
    assert torch.equal(a["inputs"], b["inputs"]) and a["source"] == b["source"]
    assert a["regime"].item() == 1 and a["source"].startswith("synthetic:multicell:")
    assert a["inputs"].shape == (8, 3, 32, 32) and a["targets"].shape == (7, 3, 32, 32)
    assert a["motion"].shape == (7, 2, 32, 32) and float(a["has_motion"]) == 1.0
    assert a["mask"].all()
    assert 0 <= float(a["targets"].min()) <= float(a["targets"].max()) <= 1
    assert a["motion"].abs().max() > 0
    assert not torch.equal(ds[1]["inputs"], a["inputs"])
    ds.set_epoch(1)
    assert ds.sim_seed(4) != again.sim_seed(4)
    assert not torch.equal(ds[4]["inputs"], a["inputs"])


def test_synthetic_motion_in_px_per_step():
    ds = SyntheticSequenceDataset(
        1, ["advection"], size=32, levels=2, dx_km=2.0, flow="zeros"
    )
    from nowcast.synthetic import generate_sequence

    s = ds[0]
    seq = generate_sequence(
        "advection", 15, seed=ds.sim_seed(0), size=32, levels=2, dx_km=2.0
    )
    expected = seq.motion[8:] * 300.0 / 2000.0
    assert np.allclose(s["motion"].numpy(), expected, atol=1e-5)
    assert not s["flow"].any()


# -- augmentation ------------------------------------------------------------------


def _blob_sample(n=24):
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    frames = []
    for k in range(3):  # a blob moving (u, v) = (2, 1) px/step
        cx, cy = 6 + 2 * k, 8 + 1 * k
        frames.append(np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 4.0)[None])
    inputs = np.stack(frames).astype(np.float32)
    flow = np.stack([np.full((n, n), 2.0), np.full((n, n), 1.0)]).astype(np.float32)
    mask = np.ones((1, 1, n, n), np.float32)
    mask[..., :4, :] = 0
    return {"inputs": inputs, "flow": flow, "motion": flow[None].copy(), "mask": mask}


def _centroid(field):
    yy, xx = np.mgrid[0 : field.shape[0], 0 : field.shape[1]]
    w = field / field.sum()
    return float((xx * w).sum()), float((yy * w).sum())


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_augmentation_turns_vectors_with_the_field(flip, turns):
    sample = _blob_sample()
    t = Dihedral(flip=flip, turns=turns)
    out = apply(sample, t)
    x0, y0 = _centroid(out["inputs"][0, 0])
    x1, y1 = _centroid(out["inputs"][1, 0])
    u, v = out["flow"][:, 0, 0]
    assert (u, v) == pytest.approx((x1 - x0, y1 - y0), abs=1e-3)
    assert np.array_equal(out["motion"][0], out["flow"])
    assert np.array_equal(out["mask"][0, 0], t.field(sample["mask"][0, 0]))
    assert out["inputs"].flags["C_CONTIGUOUS"]


def test_dataset_augmentation_and_crop_are_reproducible(cache):
    ws = find_windows(cache)
    ds = ArchiveSequenceDataset(cache, ws, augment=True, crop=16, seed=3, flow="zeros")
    a, b = ds[1], ds[1]
    assert a["inputs"].shape == (8, 2, 16, 16) and a["flow"].shape == (2, 16, 16)
    assert torch.equal(a["inputs"], b["inputs"])
    draws = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        draws.add(ds[1]["inputs"].numpy().tobytes())
    assert len(draws) > 1
    centre = ArchiveSequenceDataset(cache, ws, crop=16, flow="zeros")[1]
    full = ArchiveSequenceDataset(cache, ws, flow="zeros")[1]
    assert torch.equal(centre["inputs"], full["inputs"][..., 4:20, 4:20])


# -- sampling -------------------------------------------------------------------------


def test_class_balanced_indices():
    rng = np.random.default_rng(0)
    classes = np.array([0] * 600 + [1] * 300 + [2] * 30)
    idx = class_balanced_indices(classes, 900, rng)
    assert np.bincount(classes[idx], minlength=3).tolist() == [300, 300, 300]
    rare = idx[classes[idx] == 2]
    assert np.bincount(rare - 900).tolist() == [10] * 30  # every rare one, 10 times
    assert len(set(idx[classes[idx] == 0])) == 300  # no repeats when enough
    missing = class_balanced_indices(np.array([0] * 50 + [1] * 5), 2001, rng)
    counts = np.bincount(np.array([0] * 50 + [1] * 5)[missing], minlength=3)
    assert counts.tolist() in ([1001, 1000, 0], [1000, 1001, 0])
    assert class_balanced_indices(np.zeros(0, int), 10, rng).size == 0


class _Fake:
    def __init__(self, classes, levels):
        self.classes = np.asarray(classes)
        self.levels = levels

    def __len__(self):
        return len(self.classes)


def test_balanced_batch_sampler_keeps_level_counts_apart():
    real = _Fake([0] * 40 + [1] * 5, levels=1)
    synth = _Fake([0, 1, 2] * 10, levels=18)
    sampler = BalancedBatchSampler([real, synth], n=300, batch_size=8, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    flat = np.concatenate(batches)
    assert flat.size == 300
    for batch in batches:
        assert len(batch) <= 8
        assert all(i < 45 for i in batch) or all(i >= 45 for i in batch)
    classes = np.concatenate([real.classes, synth.classes])
    assert np.bincount(classes[flat]).tolist() == [100, 100, 100]
    assert list(sampler) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


# -- the real cases ---------------------------------------------------------------


def test_real_case_gives_26_windows(tmp_path):
    case = RADAR_CASES / "fmi-20160928"
    if not case.is_dir():
        pytest.skip(f"shared radar cases not found under {RADAR_CASES}")
    data = tmp_path / "radar-cases"
    data.mkdir()
    os.symlink(case, data / case.name)
    cache = build_cache([data], tmp_path / "cache")
    assert cache.stats.read == 40 and cache.stats.rejected == 0
    c = cache.cases["radar-cases/fmi-20160928"]
    assert c.shape == (40, 1, 250, 250) and c.dx_m == pytest.approx(2000.0, rel=1e-3)
    ws = find_windows(cache)
    assert len(ws) == 26 and all(w.n_frames == 15 for w in ws)
    assert len(find_windows(cache, stride=5)) == 6
