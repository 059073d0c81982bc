"""Training with the storm-tracked prior (``[curriculum] storm_prior``): a window
carries the prior the forecaster moves along, turned with the sample, cached
beside the flow; the trainer runs the network on it and scores against it."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from conftest import RADAR_CASES, moving_cell_scans
from nowcast.cli import main
from nowcast.curriculum import augment as aug
from nowcast.curriculum.archive_cache_build import build_cache
from nowcast.curriculum.datasets import ArchiveSequenceDataset, SyntheticSequenceDataset
from nowcast.curriculum.storm_priors import PRIOR_KEYS, batch_prior
from nowcast.curriculum.windows import find_windows
from nowcast.forecasters.model import ModelForecaster
from nowcast.forecasters.storm_prior import CellPriorParams
from nowcast.model import build_network
from nowcast.model.checkpoint import load_checkpoint, save_checkpoint
from nowcast.model.normalise import from_unit
from nowcast.radar import write_scan

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CASE = "mch-20150515"  # MeteoSwiss convection: storms the tracker follows


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    case = RADAR_CASES / CASE
    if not case.is_dir():
        pytest.skip(f"shared radar cases not found under {RADAR_CASES}")
    root = tmp_path_factory.mktemp("prior")
    data = root / "radar-cases"
    data.mkdir()
    os.symlink(case, data / case.name)
    return build_cache([data], root / "cache")


def _stormy_window(ds: ArchiveSequenceDataset) -> int:
    for i in range(len(ds)):
        if ds.prior_at(i)["prior_mask"].sum() > 50:
            return i
    raise AssertionError(f"no window of {CASE} moves a storm with the prior")


def test_a_window_carries_the_prior_the_forecaster_moves_along(real_cache, tmp_path):
    ds = ArchiveSequenceDataset(
        real_cache, find_windows(real_cache, stride=2), cell_prior=CellPriorParams()
    )
    i = _stormy_window(ds)
    sample = ds[i]
    assert set(PRIOR_KEYS) <= set(sample)
    assert tuple(sample["prior_disp"].shape) == (7, 2, 250, 250)
    assert tuple(sample["prior_mask"].shape) == (7, 250, 250)
    assert tuple(sample["prior_ceiling"].shape) == (250, 250)
    # cached: a second dataset reads it back, and the file is where the doc says
    files = list((real_cache.cache_dir / "prior").glob("*/*/*.npz"))
    assert files
    again = ArchiveSequenceDataset(
        real_cache, ds.windows, cell_prior=CellPriorParams()
    ).prior_at(i)
    np.testing.assert_array_equal(again["prior_disp"], sample["prior_disp"].numpy())

    # the network run as the trainer runs it equals the forecaster on those scans
    torch.manual_seed(0)
    net = build_network(
        hidden_channels=(4, 4), stem_channels=4, groups=2, flow_input=True
    )
    state = {
        "model": net.state_dict(),
        "init_kwargs": net.init_kwargs,
        "phase": 3,
        "epoch": 80,
        "data": {"levels": [1], "dbz_min": 0.0, "dbz_max": 70.0},
    }
    ckpt = save_checkpoint(tmp_path / "tiny.pt", state)
    w = ds.windows[i]
    case = real_cache.cases[w.case]
    frames = real_cache.dbz(w.case, w.start, w.start + 8)
    times = list(case.times[w.start : w.start + 8])
    for network in (False, True):
        fc = ModelForecaster(ckpt, device="cpu", dbz_floor=0.0, network=network)
        assert fc.cell_prior == CellPriorParams()
        want = fc.forecast(frames, times, 7, dx_m=case.dx_m).dbz
        batch = default_collate([sample])
        net.eval()
        with torch.no_grad():
            out = net(
                batch["inputs"], batch["flow"], batch_prior(batch), network=network
            )
        got = from_unit(out.frames[0].numpy(), 0.0, 70.0)
        seen = np.isfinite(want)
        assert seen.mean() > 0.5
        # the flow is cached as float16: the same forecast to a fraction of a dBZ
        diff = np.abs(got[seen] - want[seen])
        assert diff.mean() < 0.02 and np.percentile(diff, 99.9) < 1.0


def test_the_prior_turns_and_crops_with_the_sample(real_cache):
    ds = ArchiveSequenceDataset(
        real_cache,
        find_windows(real_cache, stride=2),
        cell_prior=CellPriorParams(),
        augment=True,
        crop=128,
        seed=3,
    )
    i = _stormy_window(ds)
    whole = ds.prior_at(i)
    for epoch in range(4):
        ds.set_epoch(epoch)
        transform, box = ds._draws(i, (250, 250))
        s = ds[i]
        want = aug.apply(whole, transform, box, keys=PRIOR_KEYS)
        for key in PRIOR_KEYS:
            np.testing.assert_allclose(s[key].numpy(), want[key], atol=1e-6)
        # outside the storms the first lead's displacement is the flow, which the
        # augmentation turns with the field: the prior's vectors turn the same way
        outside = s["prior_mask"][0] == 0
        np.testing.assert_allclose(
            s["prior_disp"][0][:, outside].numpy(),
            s["flow"][:, outside].numpy(),
            atol=2e-2,
        )


def test_simulated_samples_carry_the_prior_too():
    ds = SyntheticSequenceDataset(
        2, ("supercell",), size=64, levels=2, seed=1, cell_prior=CellPriorParams()
    )
    s = ds[0]
    assert tuple(s["prior_disp"].shape) == (7, 2, 64, 64)
    assert tuple(s["prior_ceiling"].shape) == (64, 64)
    batch = default_collate([ds[0], ds[1]])
    prior = batch_prior(batch)
    assert prior.disp.shape == (2, 7, 2, 64, 64) and prior.motion.shape == (
        2,
        7,
        2,
        64,
        64,
    )


def test_nowcast_train_with_the_storm_prior(tmp_path, capsys, monkeypatch):
    """``[curriculum] storm_prior = true`` end to end: the prior is cached beside
    the flows, the network trains on it, and validation scores the model against
    that prior alone (the network off)."""
    from nowcast.model.network import ConvLSTM3DNet

    calls: list[tuple[bool, bool]] = []
    forward = ConvLSTM3DNet.forward

    def recording(self, x, flow=None, prior=None, network=True):
        calls.append((prior is not None, network))
        return forward(self, x, flow, prior, network)

    monkeypatch.setattr(ConvLSTM3DNet, "forward", recording)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[paths]\ncheckpoints_dir = "checkpoints"\nstore = "state/nowcast.sqlite"\n'
        'state_dir = "state"\n[model]\nhidden_channels = [4, 4]\nstem_channels = 4\n'
        "groups = 2\n[curriculum]\nbatch_size = 2\nstorm_prior = true\n"
    )
    data, cache = tmp_path / "data", tmp_path / "cache"
    for case in ("caseA", "caseB"):
        for s in moving_cell_scans(n=16, nz=2, size=48, speed_px=(2.0, 0.0)):
            write_scan(s, data / case)
    rc = main(
        [
            "train",
            "--config",
            str(cfg),
            "--phase",
            "1",
            "--epochs",
            "1",
            "--synthetic",
            "0",
            "--size",
            "24",
            "--sequences",
            "4",
            "--device",
            "cpu",
            "--data",
            str(data),
            "--cache",
            str(cache),
            "--split",
            "cases",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert list((cache / "prior").glob("*/*/*.npz"))
    assert calls and all(with_prior for with_prior, _ in calls)
    assert (True, False) in calls and (True, True) in calls  # its prior alone too
    best = load_checkpoint(tmp_path / "out" / "phase1_best.pt")
    assert len(best["best"]["csi35_extrapolation"]) == 7
    # off (the default): no prior is made
    cfg.write_text(cfg.read_text().replace("storm_prior = true", "storm_prior = false"))
    for f in (cache / "prior").rglob("*.npz"):
        f.unlink()
    assert (
        main(
            [
                "train",
                "--config",
                str(cfg),
                "--phase",
                "1",
                "--epochs",
                "1",
                "--synthetic",
                "0",
                "--size",
                "24",
                "--sequences",
                "4",
                "--device",
                "cpu",
                "--cache",
                str(cache),
                "--cache-only",
                "--split",
                "cases",
                "--out",
                str(tmp_path / "out2"),
            ]
        )
        == 0
    )
    assert not list((cache / "prior").rglob("*.npz"))
    assert (False, True) in calls
