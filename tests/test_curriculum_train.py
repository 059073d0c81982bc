"""``nowcast train`` end to end on a tiny model: checkpoints, store rows, resume
exactness, the whole curriculum, the area-ratio rule, two-process DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nowcast.cli import main
from nowcast.config import load_config
from nowcast.model.checkpoint import load_checkpoint
from nowcast.curriculum.loaders import spec_from
from nowcast.curriculum.training import TrainRequest, train
from nowcast.store import MetricsReader

#: 2 levels, 24 x 24, hidden (4, 4): seconds an epoch on a shared 2-core CPU
TINY = ["--synthetic", "3", "--size", "24", "--levels", "2", "--device", "cpu"]


# tiny tensors: one torch thread (conftest.torch_one_thread)
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def write_config(root: Path) -> Path:
    """A workspace config: tiny network, batch 2, everything under ``root``."""
    cfg = root / "config.toml"
    cfg.write_text(
        "[paths]\n"
        'checkpoints_dir = "checkpoints"\n'
        'store = "state/nowcast.sqlite"\n'
        'state_dir = "state"\n'
        "[model]\n"
        "hidden_channels = [4, 4]\n"
        "stem_channels = 4\n"
        "groups = 2\n"
        "[curriculum]\n"
        "batch_size = 2\n"
    )
    return cfg


@pytest.fixture(scope="module")
def phase1(tmp_path_factory):
    """``nowcast train --phase 1 --epochs 2`` once, for several tests."""
    root = tmp_path_factory.mktemp("train")
    cfg = write_config(root)
    rc = main(["train", "--config", str(cfg), "--phase", "1", "--epochs", "2", *TINY])
    return root, cfg, rc


def test_phase1_writes_checkpoints_and_store_rows(phase1, capsys):
    root, cfg, rc = phase1
    assert rc == 0
    best = root / "checkpoints" / "phase1_best.pt"
    last = root / "checkpoints" / "phase1_last.pt"
    assert best.is_file() and last.is_file()
    assert sorted(p.name for p in best.parent.iterdir()) == [
        "phase1_best.pt",
        "phase1_last.pt",
    ]
    state = load_checkpoint(last)
    assert state["phase"] == 1 and state["epoch"] == 1 and state["finished"]
    assert state["step"] == 4  # 3 storms in batches of 2: 2 steps an epoch
    assert state["data"]["levels"] == [2]
    assert set(state["best"]) >= {"key", "csi35", "csi35_extrapolation", "loss"}
    assert len(state["best"]["csi35"]) == 7
    with MetricsReader(root / "state" / "nowcast.sqlite") as reader:
        runs = reader.training_runs()
        rows = reader.epochs()
    assert len(runs) == 1 and runs[0]["status"] == "completed"
    assert "train" in runs[0]["command"]
    assert [(r["epoch"], r["split"]) for r in rows] == [
        (0, "train"),
        (0, "val"),
        (1, "train"),
        (1, "val"),
    ]
    train_row, val_row = rows[2], rows[3]
    assert train_row["phase"] == 1 and train_row["lr"] == pytest.approx(1e-3)
    assert rows[0]["lr"] == pytest.approx(1e-3 / 2)  # warm-up (2 epochs: 1 of it)
    assert {"huber", "high", "ssim", "motion"} <= set(train_row["terms"])
    assert {"csi35_persistence", "csi35_extrapolation"} <= set(val_row["terms"])
    assert sorted(val_row["csi35"]) == [300 * k for k in range(1, 8)]
    assert val_row["loss"] is not None and val_row["seconds"] > 0


def test_lagrangian_quantile_training_end_to_end(tmp_path):
    """``nowcast train`` with the Lagrangian frame, the storm-tracked prior, the
    quantile loss alone and the residual motion frozen: the checkpoint is a
    Lagrangian network whose motion layer is the one it started with, and the
    quantile term is trained on and recorded."""
    cfg = write_config(tmp_path)
    cfg.write_text(
        cfg.read_text()
        .replace("[model]\n", '[model]\nframe = "lagrangian"\n')
        .replace(
            "[curriculum]\n",
            "[curriculum]\nstorm_prior = true\nquantile_loss_weight = 1.0\n"
            "train_motion = false\nresidual_lr_scale = 1.0\n",
        )
        + "[curriculum.phase1]\nhigh_penalty_weight = 0.0\nssim_weight = 0.0\n"
    )
    rc = main(["train", "--config", str(cfg), "--phase", "1", "--epochs", "1", *TINY])
    assert rc == 0
    state = load_checkpoint(tmp_path / "checkpoints" / "phase1_last.pt")
    assert state["init_kwargs"]["frame"] == "lagrangian"
    torch.manual_seed(0)  # the trainer builds its network after seeding with 0
    from nowcast.model import build_network

    fresh = build_network(**state["init_kwargs"])
    for name in ("motion.weight", "motion.bias"):  # zero from the start, and kept
        torch.testing.assert_close(state["model"][name], fresh.state_dict()[name])
        assert not state["model"][name].any(), name
    assert not torch.equal(state["model"]["change.weight"], fresh.change.weight)
    with MetricsReader(tmp_path / "state" / "nowcast.sqlite") as reader:
        rows = reader.epochs()
    train_row = [r for r in rows if r["split"] == "train"][0]
    assert train_row["terms"]["quantile"] > 0
    terms = train_row["terms"]  # Huber always counts; high and SSIM weighted 0
    assert train_row["loss"] == pytest.approx(terms["quantile"] + terms["huber"])


def _request(root: Path, **kw) -> tuple:
    settings = load_config(write_config(root))
    spec = spec_from(settings, synthetic=3, size=24, levels=2)
    base = dict(phases=[1], data=spec, out_dir=root / "checkpoints", device="cpu")
    base.update(kw)
    return settings, TrainRequest(**base)


def test_resume_from_last_is_exact(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    settings, req = _request(a, epochs=3)
    straight = train(settings, req)
    settings_b, req_b = _request(b, epochs=3, stop_after=2)
    killed = train(settings_b, req_b)
    assert killed.interrupted and not killed.phases[0].finished
    last = b / "checkpoints" / "phase1_last.pt"
    assert load_checkpoint(last)["epoch"] == 1
    torch.manual_seed(123)  # whatever happened in between does not matter
    _, req_c = _request(b, resume_from=last)  # the length comes from the file
    resumed = train(settings_b, req_c)
    assert resumed.phases[0].finished and not resumed.interrupted
    sa = load_checkpoint(a / "checkpoints" / "phase1_last.pt")
    sb = load_checkpoint(last)
    assert sa["epoch"] == sb["epoch"] == 2 and sa["step"] == sb["step"]
    for k, v in sa["model"].items():
        assert torch.equal(v, sb["model"][k]), k
    assert sa["metrics"]["loss"] == sb["metrics"]["loss"]
    assert sa["best"]["epoch"] == sb["best"]["epoch"]
    straight_rows = straight.phases[0].history
    resumed_row = resumed.phases[0].history[-1]
    assert resumed_row["train_loss"] == straight_rows[-1]["train_loss"]
    assert resumed_row["val_loss"] == straight_rows[-1]["val_loss"]
    with MetricsReader(b / "state" / "nowcast.sqlite") as reader:
        statuses = [r["status"] for r in reader.training_runs()]
    assert statuses == ["completed", "interrupted"]


def test_curriculum_runs_three_phases(tmp_path, capsys):
    cfg = write_config(tmp_path)
    export = tmp_path / "models" / "tiny.pt"
    rc = main(
        [
            "train",
            "--config",
            str(cfg),
            "--curriculum",
            "--epochs",
            "1",
            "--export",
            str(export),
            *TINY,
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    for n in (1, 2, 3):
        assert f"phase {n}: epochs" in out
        state = load_checkpoint(tmp_path / "checkpoints" / f"phase{n}_best.pt")
        assert state["phase"] == n and state["finished"]
    p3 = load_checkpoint(tmp_path / "checkpoints" / "phase3_last.pt")
    assert p3["epoch"] == 76 and p3["step"] == 6
    assert p3["rules"]["ssim_weight"] == 30.0
    slim = load_checkpoint(export)
    assert slim["optimizer"] is None and slim["phase"] == 3
    with MetricsReader(tmp_path / "state" / "nowcast.sqlite") as reader:
        rows = reader.epochs()
    assert [(r["phase"], r["epoch"]) for r in rows if r["split"] == "val"] == [
        (1, 0),
        (2, 26),
        (3, 76),
    ]
    # The export carries its training history; a fresh store (a demo
    # workspace's) gets it back, once.
    (run,) = slim["history"]
    assert run["status"] == "completed" and run["command"].startswith("nowcast train")
    assert [(e["phase"], e["epoch"], e["split"]) for e in run["epochs"]] == [
        (r["phase"], r["epoch"], r["split"]) for r in rows
    ]
    from nowcast.curriculum.model_history import import_history
    from nowcast.store import MetricsStore

    with MetricsStore(tmp_path / "fresh.sqlite") as store:
        assert len(import_history(store, slim["history"])) == 1
        assert import_history(store, slim["history"]) == []
    with MetricsReader(tmp_path / "fresh.sqlite") as reader:
        (imported,) = reader.training_runs()
        again = reader.epochs()
    assert imported["status"] == "completed" and imported["n_epochs"] == 3
    assert [(r["phase"], r["epoch"], r["split"], r["loss"]) for r in again] == [
        (r["phase"], r["epoch"], r["split"], r["loss"]) for r in rows
    ]
    assert again[-1]["csi35"] == rows[-1]["csi35"]


def test_phase2_from_phase1_best_and_refusals(phase1, tmp_path, capsys):
    root, cfg, _ = phase1
    best = root / "checkpoints" / "phase1_best.pt"
    out = tmp_path / "ck"
    rc = main(
        [
            "train",
            "--config",
            str(cfg),
            "--phase",
            "2",
            "--epochs",
            "1",
            "--resume-from",
            str(best),
            "--out",
            str(out),
            *TINY,
        ]
    )
    assert rc == 0
    state = load_checkpoint(out / "phase2_last.pt")
    start = load_checkpoint(best)
    assert start["finished"]  # marked when phase 1 ended
    assert state["epoch"] == 26
    assert state["step"] == start["step"] + 2  # counted on from phase 1's best
    capsys.readouterr()
    rc = main(
        [
            "train",
            "--config",
            str(cfg),
            "--phase",
            "1",
            "--resume-from",
            str(out / "phase2_last.pt"),
            *TINY,
        ]
    )
    assert rc == 1
    assert "phase 2 is finished" in capsys.readouterr().err
    if not torch.cuda.is_available():
        argv = ["train", "--config", str(cfg), *TINY, "--device", "cuda"]
        assert main(argv) == 1
        assert "no CUDA device" in capsys.readouterr().err


def test_area_ratio_rule_is_applied_and_recorded(tmp_path):
    from nowcast.curriculum.loaders import build_data
    from nowcast.curriculum.trainer import PhaseTrainer
    from nowcast.model import build_network, network_kwargs
    from nowcast.store import MetricsStore

    settings, req = _request(tmp_path, epochs=1)
    data = build_data(settings, req.data)
    net = build_network(**network_kwargs(settings.model))
    with MetricsStore(tmp_path / "s.sqlite") as store:
        run = store.start_training_run("test")
        trainer = PhaseTrainer(
            settings,
            2,
            net,
            data,
            out_dir=tmp_path / "ck",
            epochs=1,
            store=store,
            run_id=run,
        )
        trainer.area_rule.bound = -1.0  # any ratio counts as fat cells
        trainer.run()
    state = load_checkpoint(tmp_path / "ck" / "phase2_last.pt")
    assert state["rules"]["ssim_weight"] == settings.curriculum.area_ratio_ssim
    with MetricsReader(tmp_path / "s.sqlite") as reader:
        events = reader.recent_events()
    assert any("SSIM weight 20 -> 30" in e["message"] for e in events)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    cfg = write_config(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "nowcast",
        "train",
        "--config",
        str(cfg),
        "--phase",
        "1",
        "--epochs",
        "2",
        "--synthetic",
        "4",
        "--size",
        "24",
        "--levels",
        "2",
        "--device",
        "cpu",
    ]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone prints the summary, writes checkpoints and the store
    assert proc.stdout.count("phase 1: epochs 0-1") == 1
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["phase1_best.pt", "phase1_last.pt"]
    state = load_checkpoint(tmp_path / "checkpoints" / "phase1_last.pt")
    assert state["step"] == 2  # 4 storms, batch 2: one batch a rank an epoch
    with MetricsReader(tmp_path / "state" / "nowcast.sqlite") as reader:
        assert len(reader.training_runs()) == 1
        assert len(reader.epochs()) == 4
    assert proc.stderr.count('"event": "epoch"') == 2


RANK_THAT_WRAPS_AND_CLOSES = """
import os, torch
from nowcast.curriculum.distributed import setup

def threads():
    return len(os.listdir("/proc/self/task"))

torch.zeros(1)  # torch's own threads start before the count
before = threads()
d = setup("cpu")
net = d.wrap(torch.nn.Linear(3, 3))  # DDP imports torch.distributed.nn here
net(torch.ones(2, 3)).sum().backward()
t = torch.ones(1)
torch.distributed.all_reduce(t)
del net
d.close()
with open(f"rank{d.rank}.txt", "w") as out:  # one file a rank: no interleaving
    out.write(f"sum {t.item():g}, threads before {before} after {threads()}")
"""


@pytest.mark.slow
def test_closing_the_group_joins_its_threads(tmp_path):
    """A group that outlives close() keeps gloo threads running into interpreter
    shutdown, where one of them aborted a rank now and then (CI, 2026-12-08)."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_THAT_WRAPS_AND_CLOSES)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc-per-node", "2", str(script)]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        line = (tmp_path / f"rank{rank}.txt").read_text()
        assert line.startswith("sum 2,"), line
        before, after = (int(w) for w in line.split()[-3::2])
        assert after <= before, f"rank {rank}: {line}"


def test_progress_bar_and_log_lines(capsys):
    import io

    from nowcast.curriculum.progress import Progress

    stream = io.StringIO()
    bar = Progress(stream=stream, bar=True)
    bar.start_epoch(1, 0, 2)
    bar.advance(0.5)
    bar.advance(0.25)
    bar.validating()
    bar.end_epoch({"phase": 1, "epoch": 0, "val_loss": 0.1})
    bar.note("phase settled", epoch=0)
    bar.close()
    text = stream.getvalue()
    assert "epoch phase=1 epoch=0 val_loss=0.1" in text and "phase settled" in text
    quiet = Progress(enabled=False, stream=io.StringIO(), bar=True)
    quiet.end_epoch({"epoch": 0})
    assert not quiet.bar


def test_holdout_by_data_dir_name():
    from nowcast.curriculum.loaders import _expand_holdout

    keys = ["radar-cases/fmi-1", "radar-cases/mch-2", "more/knmi-3", "archive"]
    assert _expand_holdout(["radar-cases"], keys) == [
        "radar-cases/fmi-1",
        "radar-cases/mch-2",
    ]
    assert _expand_holdout(["knmi-3", "archive"], keys) == ["knmi-3", "archive"]


def test_the_trainers_loss_and_optimiser_teach_a_tiny_net_a_known_motion():
    """Training learns, not only writes rows: on one sequence of a cell moving 1 px
    a step, the phase-1 loss and optimiser bring the loss down to a small fraction
    of the untrained net's, and the forecast cell sits where the cell went."""
    from conftest import moving_cell_scans
    from nowcast.config import Settings
    from nowcast.curriculum.losses import CombinedLoss
    from nowcast.curriculum.phases import make_optimizer
    from nowcast.model import build_network

    torch.manual_seed(0)
    scans = moving_cell_scans(n=15, nz=2, size=24, speed_px=(1.0, 0.0))
    unit = torch.tensor([s.dbz / 70.0 for s in scans], dtype=torch.float32)[None]
    x, target = unit[:, :8], unit[:, 8:]
    net = build_network(
        hidden_channels=(8, 8), stem_channels=8, groups=2, flow_input=False
    )

    def peak(volume):
        return divmod(int(volume.argmax()), volume.shape[1])

    with torch.no_grad():  # untrained: the cell stays where it was last seen
        assert (
            peak(net(x).frames[0, 0, 0]) == peak(x[0, -1, 0]) != peak(target[0, 0, 0])
        )
    phase = Settings().curriculum.phase1
    loss_fn = CombinedLoss(phase.high_penalty_weight, phase.ssim_weight, 40 / 70)
    optimiser = make_optimizer(net, phase)
    for group in optimiser.param_groups:
        group["lr"] = 3e-3
    losses = []
    for _ in range(80):
        optimiser.zero_grad()
        loss = loss_fn(net(x).frames, target)["total"]
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::10]
    with torch.no_grad():  # t+1, lowest level: moved one pixel east
        assert peak(net(x).frames[0, 0, 0]) == peak(target[0, 0, 0])


def test_the_quantile_loss_teaches_a_lagrangian_net_a_known_growth():
    """A cell moving 1 px a step and weakening 2 dB a step: with its motion given
    (the flow, the residual motion frozen) the Lagrangian network learns the
    decay from the quantile loss alone, where it goes."""
    from nowcast.config import Settings
    from nowcast.curriculum.losses import CombinedLoss
    from nowcast.curriculum.phases import make_optimizer
    from nowcast.model import build_network

    torch.manual_seed(0)
    size, n = 24, 15
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32),
        torch.arange(size, dtype=torch.float32),
        indexing="ij",
    )
    frames = []
    for k in range(n):
        cell = torch.exp(-((xx - 5 - k) ** 2 + (yy - 12) ** 2) / (2 * 3.0**2))
        frames.append((60.0 - 2.0 * k) * cell / 70.0)
    unit = torch.stack(frames)[None, :, None]  # (1, 15, 1, Y, X)
    x, target = unit[:, :8], unit[:, 8:]
    flow = torch.zeros(1, 2, size, size)
    flow[:, 0] = 1.0
    net = build_network(
        hidden_channels=(8, 8),
        stem_channels=8,
        groups=2,
        flow_input=True,
        frame="lagrangian",
    )
    motion_before = [p.detach().clone() for p in net.motion.parameters()]
    phase = Settings().curriculum.phase1
    loss_fn = CombinedLoss(0.0, 0.0, 40 / 70, quantile_weight=1.0, quantile_tau=0.5)
    optimiser = make_optimizer(net, phase, train_motion=False)
    assert not any(p.requires_grad for p in net.motion.parameters())
    for group in optimiser.param_groups:
        group["lr"] = 3e-3
    with torch.no_grad():
        prior = net(x, flow, network=False).frames
    for _ in range(60):
        optimiser.zero_grad()
        loss_fn(net(x, flow).frames, target)["total"].backward()
        optimiser.step()
    with torch.no_grad():
        out = net(x, flow).frames
    for p, q in zip(net.motion.parameters(), motion_before, strict=True):
        torch.testing.assert_close(p, q)  # the motion stayed the prior's
    peak = lambda f: float(f[0, -1, 0].max()) * 70  # noqa: E731 (t+35, dBZ)
    assert peak(target) < peak(out) < peak(prior) - 6.0
    assert abs(peak(out) - peak(target)) < 4.0, (peak(out), peak(target))
    # where it goes: the forecast's peak sits on the observed cell's
    assert int(out[0, -1, 0].argmax()) == int(target[0, -1, 0].argmax())


def test_cache_only_trains_without_the_scans(tmp_path, capsys):
    """Build the archive cache from real files, move the scans away, and train on
    the cache alone (what a lent GPU machine without the archive does)."""
    import shutil

    from conftest import moving_cell_scans
    from nowcast.radar import write_scan

    root = tmp_path
    cfg = write_config(root)
    data, cache = root / "data", root / "cache"
    for case in ("caseA", "caseB"):
        for s in moving_cell_scans(n=16, nz=2, size=48, speed_px=(2.0, 0.0)):
            write_scan(s, data / case)
    common = [
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
        "--split",
        "cases",
    ]
    assert main([*common, "--data", str(data), "--out", str(root / "a")]) == 0
    shutil.rmtree(data)  # the scans are gone; the cache stays
    capsys.readouterr()
    assert main([*common, "--cache-only", "--out", str(root / "b")]) == 0
    out = capsys.readouterr().out
    assert "phase 1" in out
    assert (root / "b" / "phase1_best.pt").is_file()
    assert (cache / "manifest.json").is_file()  # not rebuilt away
    # refusals: with --data, and a cache made for another pool factor
    assert main([*common, "--cache-only", "--data", str(root)]) == 2
    assert "leave out --data" in capsys.readouterr().err
    other = root / "other.toml"
    other.write_text(cfg.read_text() + "[grid]\npool_factor = 4\n")
    rc = main(
        [
            "train",
            "--config",
            str(other),
            "--phase",
            "1",
            "--epochs",
            "1",
            "--synthetic",
            "0",
            "--device",
            "cpu",
            "--cache",
            str(cache),
            "--cache-only",
        ]
    )
    assert rc == 1
    assert "grid.pool_factor = 2" in capsys.readouterr().err


def test_validate_on_the_cases_asked_for(tmp_path):
    """``nowcast train --validate CASE``: that case whole is the validation set,
    the others (but the held-out one) are trained on whole."""
    from conftest import moving_cell_scans
    from nowcast.curriculum.loaders import build_data
    from nowcast.radar import write_scan

    data = tmp_path / "data"
    for case in ("caseA", "caseB", "caseC"):
        for s in moving_cell_scans(n=16, nz=2, size=32, speed_px=(2.0, 0.0)):
            write_scan(s, data / case)
    settings = load_config(write_config(tmp_path))
    spec = spec_from(
        settings,
        data_dirs=[data],
        synthetic=0,
        size=24,
        sequences=4,
        cache_dir=tmp_path / "cache",
        validate=["caseB"],
        holdout=["caseC"],
        batch_size=2,
    )
    built = build_data(settings, spec)
    cases = {
        name: {w.case.rsplit("/", 1)[-1] for ds in parts for w in ds.windows}
        for name, parts in (
            ("validation", built.validation),
            ("holdout", built.holdout),
        )
    }
    assert cases == {"validation": {"caseB"}, "holdout": {"caseC"}}
    train_cases = {
        w.case.rsplit("/", 1)[-1]
        for ds in built.train.datasets
        for w in ds.dataset.windows
    }
    assert train_cases == {"caseA"}
    assert built.describe["train_windows"] == 2  # 16 frames: 2 whole windows
