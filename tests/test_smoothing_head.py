"""The smoothing head: its bank, its start from the fit, its loss, that it learns,
what a checkpoint carries, and the model forecaster applying it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nowcast.errors import ForecasterError
from nowcast.forecasters.lead_smoothing import sigmas_px, smooth_leads
from nowcast.forecasters.model import ModelForecaster
from nowcast.forecasters.smoothing_head import (
    SmoothingHead,
    apply_head,
    head_state,
    load_head,
    smoothing_bank,
    soft_csi_loss,
)
from nowcast.model.checkpoint import load_checkpoint, save_checkpoint
from test_lead_smoothing import cells
from test_model_forecaster import TIMES, cell_frames, make_checkpoint

pytestmark = pytest.mark.usefixtures("torch_one_thread")
BANK = [0.0, 1.0, 2.0, 4.0]


def forecast_stack(seed=0, leads=3, levels=2, size=40):
    rng = np.random.default_rng(seed)
    lead = np.stack([cells(rng, n=5, size=size) for _ in range(levels)])
    lead = np.maximum(lead, 0.0)
    lead[-1, :4, :4] = np.nan
    return np.stack([lead] * leads).astype(np.float32)


def test_bank_members_are_the_smoothing_at_each_spread():
    dbz = forecast_stack()
    bank = smoothing_bank(dbz, BANK, 2000.0, 300.0, floor=0.0, mode="max")
    assert bank.shape == (4, *dbz.shape)
    np.testing.assert_array_equal(bank[0], dbz)  # spread 0: as it is
    want = smooth_leads(dbz, sigmas_px([2.0], 2000.0, 300.0, 3), floor=0.0, mode="max")
    np.testing.assert_array_equal(bank[2], want)


def test_a_head_started_from_the_fit_is_the_fit():
    dbz = forecast_stack()
    spread = [1.0, 2.0, 4.0]
    head = SmoothingHead(len(BANK), 3, hidden=4, dilations=(1, 2))
    head.start_from(spread, BANK)
    got = apply_head(head, dbz, BANK, 2000.0, 300.0, floor=0.0, mode="max")
    want = smooth_leads(dbz, sigmas_px(spread, 2000.0, 300.0, 3), floor=0.0, mode="max")
    assert (np.isnan(got) == np.isnan(want)).all()  # coverage kept
    np.testing.assert_allclose(got, want, atol=0.2, equal_nan=True)
    assert np.nanmax(np.abs(got - dbz)) > 5.0  # and it did smooth


def test_soft_csi_loss_scores_hits_and_misses():
    obs = torch.zeros(2, 16, 16)
    obs[:, 4:8, 4:8] = 45.0
    assert float(soft_csi_loss(obs.clone(), obs, (20.0, 35.0), 1.0)) < 0.01
    miss = torch.roll(obs, shifts=8, dims=-1)
    assert float(soft_csi_loss(miss, obs, (20.0, 35.0), 1.0)) > 0.99
    valid = torch.zeros_like(obs)
    valid[:, :, :8] = 1.0  # the miss's echo lies outside: only misses remain
    assert float(soft_csi_loss(miss, obs, (20.0,), 1.0, valid)) > 0.99


def test_the_head_learns_to_choose_the_member_that_verifies():
    # the observation is the unsmoothed forecast: started on heavy blur, the head
    # must move its weight to the sharp member and its soft CSI must improve
    dbz = forecast_stack(levels=1, leads=2, size=32)
    bank = smoothing_bank(dbz, BANK, 2000.0, 300.0, floor=0.0, mode="blur")
    x = torch.from_numpy(np.nan_to_num(np.moveaxis(bank[:, :, 0], 0, 1), nan=0.0))
    obs = torch.from_numpy(np.nan_to_num(dbz[:, 0], nan=0.0))
    lead = torch.arange(2)
    torch.manual_seed(0)
    head = SmoothingHead(len(BANK), 2, hidden=4, dilations=(1,))
    head.start_from([4.0], BANK)
    opt = torch.optim.Adam(head.parameters(), lr=0.2)
    first = soft_csi_loss(head(x, lead), obs).item()
    for _ in range(30):
        loss = soft_csi_loss(head(x, lead), obs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert soft_csi_loss(head(x, lead), obs).item() < first - 0.1
    w = head.weights(x, lead).mean(dim=(0, 2, 3))
    assert int(w.argmax()) == 0


def test_the_checkpoint_carries_the_head_and_the_forecaster_applies_it(tmp_path):
    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    state = load_checkpoint(ckpt)
    state["lead_smoothing"] = {"spread_m_s": [0.5], "mode": "max"}
    head = SmoothingHead(len(BANK), 7, hidden=4, dilations=(1, 2))
    spread = [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]
    head.start_from(spread, BANK)
    state["smoothing_head"] = head_state(head, BANK, "max", epoch=3)
    with_head = save_checkpoint(tmp_path / "head.pt", state)
    frames = cell_frames()
    kw = {"device": "cpu", "dbz_floor": 0.0, "cell_prior": False}
    plain = ModelForecaster(ckpt, **kw).forecast(frames, TIMES, 7, dx_m=2000.0)
    fc = ModelForecaster(with_head, **kw)
    assert fc.info["smoothing_head_m_s"] == BANK
    assert fc.info["lead_smoothing_m_s"] is None  # the head takes the fit's place
    got = fc.forecast(frames, TIMES, 7, dx_m=2000.0).dbz
    want = smooth_leads(
        plain.dbz, sigmas_px(spread, 2000.0, 300.0, 7), floor=0.0, mode="max"
    )
    np.testing.assert_allclose(got, want, atol=0.2, equal_nan=True)
    assert np.nanmax(np.abs(got[-1] - plain.dbz[-1])) > 1.0
    for off in ({"smoothing": False}, {"network": False}):
        quiet = ModelForecaster(with_head, **kw, **off)
        assert quiet.head is None and quiet.info["smoothing_head_m_s"] is None
    np.testing.assert_array_equal(
        ModelForecaster(with_head, smoothing=False, **kw)
        .forecast(frames, TIMES, 7, dx_m=2000.0)
        .dbz,
        plain.dbz,
    )
    # rebuilt from the entry alone
    again, bank, mode = load_head(load_checkpoint(with_head)["smoothing_head"])
    assert bank == BANK and mode == "max" and again.n_leads == 7


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "sharpen"}, "mode 'sharpen'"),
        ({"bank_m_s": [0.0, 1.0]}, "2 bank spreads for 4 weights"),
        ({"state_dict": {}}, "weights do not fit"),
    ],
)
def test_a_head_that_cannot_be_rebuilt_is_refused_at_load(tmp_path, change, message):
    state = load_checkpoint(make_checkpoint(tmp_path / "tiny.pt"))
    head = SmoothingHead(len(BANK), 7, hidden=4, dilations=(1,))
    state["smoothing_head"] = {**head_state(head, BANK, "max"), **change}
    bad = save_checkpoint(tmp_path / "bad.pt", state)
    with pytest.raises(ForecasterError, match=f"bad.pt: .*{message}"):
        ModelForecaster(bad, device="cpu", cell_prior=False)
    ModelForecaster(bad, device="cpu", cell_prior=False, smoothing=False)


def test_a_trained_candidate_takes_productions_head(tmp_path):
    from nowcast.forecasters.lead_smoothing import carry_smoothing

    production = make_checkpoint(tmp_path / "production.pt")
    candidate = make_checkpoint(tmp_path / "candidate.pt")
    state = load_checkpoint(production)
    head = SmoothingHead(len(BANK), 7, hidden=4, dilations=(1,))
    state["smoothing_head"] = head_state(head, BANK, "max")
    save_checkpoint(production, state)
    assert carry_smoothing(production, candidate)
    carried = load_checkpoint(candidate)
    assert carried["smoothing_head"]["carried_from"] == str(production)
    assert "lead_smoothing" not in carried  # production had no fit to carry
    assert not carry_smoothing(production, candidate)  # it has one now
    assert ModelForecaster(candidate, device="cpu", cell_prior=False).head is not None


def test_train_smoothing_head_script_trains_on_real_cases(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    steps = repo.parent / "shared" / "data" / "radar-cases-steps"
    ckpt = make_checkpoint(tmp_path / "tiny.pt", levels=(1,))
    state = load_checkpoint(ckpt)
    state["lead_smoothing"] = {"spread_m_s": [4.5], "mode": "max"}  # far too much
    save_checkpoint(ckpt, state)
    out = tmp_path / "head.pt"
    args = ["--model", str(ckpt), "--real", str(steps), "--train", "bom66"]
    args += ["--validate", "mrms", "--limit", "1", "--epochs", "2", "--crop", "96"]
    args += ["--hidden", "4", "--dilations", "1,2", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(repo / "bench" / "train_smoothing_head.py"), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 training, 1 validation windows" in proc.stdout
    assert "epoch 1:" in proc.stdout and "| t+7 |" in proc.stdout
    written = load_checkpoint(out)
    entry = written["smoothing_head"]
    assert entry["trained_on"] == ["bom66"] and entry["validated_on"] == ["mrms"]
    assert entry["windows"] == {"train": 1, "validate": 1}
    fit = np.mean([[r[v] for v in (20.0, 35.0)] for r in entry["validation"]["fit"]])
    won = np.mean([[r[v] for v in (20.0, 35.0)] for r in entry["validation"]["head"]])
    assert won > fit  # written only because it verified better than the fit
    for key, tensor in state["model"].items():  # the network's weights untouched
        assert torch.equal(tensor, written["model"][key])
    fc = ModelForecaster(out, device="cpu", cell_prior=False)
    assert fc.head is not None and fc.info["smoothing_head_m_s"] == entry["bank_m_s"]
