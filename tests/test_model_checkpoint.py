"""Checkpoints: weights_only round trip, RNG states, atomic writes, clear errors."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from nowcast.curriculum import rng
from nowcast.model import checkpoint as ckpt
from nowcast.errors import ModelError
from nowcast.model import build_network

TINY = dict(hidden_channels=(4, 4), stem_channels=4, groups=2, flow_input=True)


# tiny tensors: one torch thread (conftest.torch_one_thread)
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _state(net, opt) -> dict:
    return {
        "model": net.state_dict(),
        "init_kwargs": net.init_kwargs,
        "optimizer": opt.state_dict(),
        "scheduler": {"epoch": 3, "kind": "constant", "inner": None},
        "phase": 1,
        "epoch": 3,
        "step": 12,
        "finished": False,
        "best": {"epoch": 2, "key": [1.0, 0.4, -0.3], "csi35": [0.5, float("nan")]},
        "config": json.dumps({"model": {"hidden_channels": [4, 4]}}),
        "data": {"levels": [2], "dbz_min": 0.0, "dbz_max": 70.0},
        "rng": rng.rng_state(),
    }


def _trained():
    torch.manual_seed(0)
    net = build_network(**TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.rand(1, 8, 1, 16, 16)
    net(x, torch.zeros(1, 2, 16, 16)).frames.mean().backward()
    opt.step()
    return net, opt


def test_round_trip_with_weights_only(tmp_path):
    net, opt = _trained()
    path = ckpt.save_checkpoint(tmp_path / "phase1_last.pt", _state(net, opt))
    # the file itself loads with weights_only=True: no pickled code inside
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == ckpt.FORMAT and raw["saved"].endswith("Z")
    state = ckpt.load_checkpoint(path)
    assert state["epoch"] == 3 and state["best"]["key"] == [1.0, 0.4, -0.3]
    assert json.loads(state["config"])["model"]["hidden_channels"] == [4, 4]
    opt2 = torch.optim.AdamW(build_network(**TINY).parameters(), lr=1.0)
    opt2.load_state_dict(state["optimizer"])
    assert opt2.param_groups[0]["lr"] == 1e-3
    loaded, meta = ckpt.load_model(path)
    assert not loaded.training and meta["phase"] == 1 and meta["path"] == str(path)
    assert "model" not in meta and "optimizer" not in meta
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    x = torch.rand(1, 8, 2, 16, 16)
    flow = torch.zeros(1, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(net.eval()(x, flow).frames, loaded(x, flow).frames)


def test_rng_states_restore_every_generator():
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    saved = rng.rng_state()
    want = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    rng.set_rng_state(saved)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(want[0], got[0])
    assert np.array_equal(want[1], got[1]) and want[2] == got[2]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    net, opt = _trained()
    target = tmp_path / "phase1_best.pt"

    def broken(obj, fh, *a, **kw):
        fh.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(target, _state(net, opt))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    net, opt = _trained()
    target = ckpt.save_checkpoint(tmp_path / "phase1_best.pt", _state(net, opt))
    before = target.read_bytes()
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError))
    with pytest.raises(OSError):
        ckpt.save_checkpoint(target, _state(net, opt))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["phase1_best.pt"]


def test_clear_errors_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="nope.pt: no such checkpoint"):
        ckpt.load_model(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError, match="junk.pt: not a readable nowcast checkpoint"):
        ckpt.load_model(junk)
    net, opt = _trained()
    good = ckpt.save_checkpoint(tmp_path / "good.pt", _state(net, opt))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelError, match="cut.pt"):
        ckpt.load_model(cut)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ModelError, match="other.pt: not a nowcast checkpoint"):
        ckpt.load_model(other)
    bad = _state(net, opt)
    bad["init_kwargs"] = {**bad["init_kwargs"], "hidden_channels": [8, 8]}
    wrong = ckpt.save_checkpoint(tmp_path / "wrong.pt", bad)
    with pytest.raises(ModelError, match="wrong.pt: checkpoint does not fit"):
        ckpt.load_model(wrong)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": 1, "model": {}, "init_kwargs": {}, "x": object()}, pickled)
    with pytest.raises(ModelError, match="pickled.pt: refused as unsafe") as refused:
        ckpt.load_model(pickled)
    assert "weights_only" not in str(refused.value)  # never advise unsafe loading
