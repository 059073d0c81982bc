"""Nightly retraining: the archive split, the promotion rule, atomic promotion with
``.previous``, the decision in the store, the hot reload of a promoted model, and
``nowcast retrain --now`` end to end as a real subprocess on a tiny archive."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from daemon_support import (
    FakeClock,
    fake_provider,
    hidden_files,
    workspace,
    write_checkpoint,
)
from nowcast.daemon import Daemon
from nowcast.errors import RetrainError
from nowcast.radar import write_scan
from nowcast.retrain import decide, previous_path, promote, retrain
from nowcast.retrain.heldout import THRESHOLD_DBZ, heldout_sequences, score_heldout
from nowcast.retrain.split import split_archive, stage_links
from nowcast.store import MetricsReader
from nowcast.synthetic import generate_sequence
from test_model_forecaster import make_checkpoint

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
N_SCANS = 60
#: 0.07 days = 100.8 min: the newest 21 scans (5 min apart) are held out
HELDOUT_DAYS = 0.07
#: the child's options: 1 epoch a phase, 2 simulated storms, one thread
TRAIN_ARGS = [
    "--epochs", "1", "--synthetic", "2", "--size", "16", "--levels", "3",
    "--device", "cpu", "--threads", "1", "--sequences", "4",
]  # fmt: skip


# tiny tensors: one torch thread (conftest.torch_one_thread)
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _toml(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def retrain_workspace(tmp_path: Path, margin: float = -1.0, **retrain_keys):
    """A workspace (3 x 32 x 32 scans), a tiny network, retraining that fits a test."""
    keys = {
        "nice": 0,  # the test process must not lower its own priority
        "heldout_days": HELDOUT_DAYS,
        "heldout_stride": 1,
        "min_heldout_sequences": 2,
        "promotion_margin": margin,
        **retrain_keys,
    }
    extra = (
        "[model]\nhidden_channels = [4]\nstem_channels = 4\ngroups = 2\n"
        "[curriculum]\nbatch_size = 2\n"
        "[retrain]\n"
        + "".join(f"{k} = {v!r}\n" for k, v in keys.items())
        + f"train_args = {_toml(TRAIN_ARGS)}\n"
    )
    return workspace(tmp_path, extra, device="cpu", fallback="extrapolation")


def fill_archive(settings, n: int = N_SCANS) -> list[Path]:
    """A simulated mixed storm (echo >= 35 dBZ to the end), written as scans."""
    seq = generate_sequence(
        "mixed", n, seed=0, size=32, levels=3, dx_km=2.0, interval_s=300, start=T0
    )
    return [write_scan(scan, settings.paths.archive_dir) for scan in seq.scans()]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """One archive for the in-process tests (read only)."""
    root = tmp_path_factory.mktemp("archive")
    settings = retrain_workspace(root)
    fill_archive(settings)
    return settings


def test_split_holds_out_the_newest_days(archive, tmp_path):
    split = split_archive(archive)
    assert len(split.train) + len(split.heldout) == N_SCANS
    assert len(split.heldout) == 21
    assert split.train[-1][0] <= split.cutoff < split.heldout[0][0]
    assert split.newest - split.cutoff == timedelta(days=HELDOUT_DAYS)
    staged = stage_links(split.train, split.root, tmp_path / "staged")
    links = sorted(p for p in staged.rglob("*.nc"))
    assert len(links) == len(split.train) and all(p.is_symlink() for p in links)
    assert {p.resolve() for p in links} == {p.resolve() for _, p in split.train}
    assert links[0].parent.name == "20240601"  # one case a day, as in the archive
    stage_links(split.train[:3], split.root, staged)  # emptied first
    assert len(list(staged.rglob("*.nc"))) == 3
    assert len(list(archive.paths.archive_dir.rglob("*.nc"))) == N_SCANS


def test_split_refuses_an_archive_with_nothing_to_train_on(tmp_path):
    s = retrain_workspace(tmp_path)
    with pytest.raises(RetrainError, match="no scan archive"):
        split_archive(s)
    s.paths.archive_dir.mkdir()
    with pytest.raises(RetrainError, match="holds no scans"):
        split_archive(s)
    fill_archive(s, 10)  # 45 minutes, all within the held-out 0.07 days
    with pytest.raises(RetrainError, match="nothing to train on yet"):
        split_archive(s)


def test_heldout_scores_are_csi35_on_the_pooled_composite(archive):
    from nowcast.forecasters import get_forecaster
    from nowcast.radar import pool, read_scan

    split = split_archive(archive)
    times = [t for t, _ in split.heldout]
    paths = [p for _, p in split.heldout]
    seqs = heldout_sequences(times, archive)
    assert len(seqs) == 21 - 15 + 1 and all(len(q) == 15 for q in seqs)
    forecasters = {"persistence": get_forecaster("persistence")}
    result = score_heldout(forecasters, paths, times, seqs, archive)
    skill = result.skills["persistence"]
    assert result.sequences == skill.sequences == len(seqs) and result.skipped == 0
    # by hand, for lead 1: the last input repeated against the next scan
    pooled = [pool(read_scan(p).dbz, 2).max(axis=0) for p in paths]
    hits = misses = false = 0
    for q in seqs:
        f, o = pooled[q[7]] >= THRESHOLD_DBZ, pooled[q[8]] >= THRESHOLD_DBZ
        hits, misses, false = hits + (f & o).sum(), misses + (~f & o).sum(), false + (
            f & ~o
        ).sum()
    assert skill.per_lead[0] == pytest.approx(hits / (hits + misses + false))
    assert len(skill.per_lead) == 7
    assert skill.score == pytest.approx(np.mean(skill.per_lead))
    assert skill.observed_events > 0


def _skill(score, sequences=10, events=100, error=None):
    return SimpleNamespace(
        score=score, sequences=sequences, observed_events=events, error=error
    )


@pytest.mark.parametrize(
    ("cand", "prod", "margin", "promoted", "reason"),
    [
        (_skill(0.50), _skill(0.45), 0.01, True, "0.5000 > production 0.4500"),
        (_skill(0.50), _skill(0.45), 0.05, False, "0.5000 <= production 0.4500"),
        (_skill(0.45), _skill(0.45), 0.0, False, "<= production"),
        (_skill(0.40), _skill(0.45), -0.1, True, "margin -0.1"),
        (_skill(0.9, events=0), _skill(0.1), 0.01, False, "no echo >= 35 dBZ"),
        (_skill(0.9, sequences=1), _skill(0.1), 0.01, False, "only 1 held-out"),
        (_skill(0.9, error="boom"), _skill(0.1), 0.01, False, "candidate failed"),
        (_skill(float("nan")), _skill(0.1), 0.01, False, "undefined"),
    ],
)
def test_promotion_rule(cand, prod, margin, promoted, reason):
    d = decide(cand, prod, margin, min_sequences=2)
    assert d.promote is promoted
    assert reason in d.reason
    assert d.margin == margin


def test_promotion_is_atomic_and_keeps_the_previous_model(tmp_path):
    production = tmp_path / "models" / "production.pt"
    candidate = tmp_path / "candidate.pt"
    candidate.write_bytes(b"new")
    assert promote(candidate, production) is None  # a first deployment
    assert production.read_bytes() == b"new"
    inode = production.stat().st_ino
    candidate.write_bytes(b"newer")
    previous = promote(candidate, production)
    assert previous == previous_path(production) == production.with_name(
        "production.previous.pt"
    )
    assert previous.read_bytes() == b"new" and production.read_bytes() == b"newer"
    assert production.stat().st_ino != inode  # replaced, not rewritten in place
    assert candidate.read_bytes() == b"newer"  # left where it was
    with pytest.raises(OSError):
        promote(tmp_path / "missing.pt", production)
    assert production.read_bytes() == b"newer"
    assert hidden_files(production.parent) == []


def test_a_running_daemon_hot_reloads_a_promoted_model(tmp_path):
    s = workspace(tmp_path)
    write_checkpoint(s, "good first")
    loads = []
    clock = FakeClock()
    d = Daemon(s, clock=clock, provider=fake_provider(loads=loads))
    d.initialize(clock.now)
    candidate = tmp_path / "candidate.pt"
    candidate.write_text("good second")
    promote(candidate, s.paths.production_model)
    report = d.step(clock.advance(1))
    assert report.reload is not None and report.reload["ok"], report.reload
    assert [text for text, _ in loads] == ["good first", "good second"]
    assert d.models.current.forecaster.mode == "good"
    assert previous_path(s.paths.production_model).read_text() == "good first"
    d.shutdown(clock.now)


def test_retrain_with_a_candidate_records_the_decision(archive, tmp_path):
    """In process, no training: a random tiny network against the fallback, then
    against itself as production."""
    ckpt = make_checkpoint(tmp_path / "candidate.pt", levels=(3,))
    s = archive
    production = s.paths.production_model
    assert not production.exists()
    first = retrain(s, candidate=ckpt)  # margin -1: any defined score wins
    assert first.promoted and first.production_method == "extrapolation"
    assert production.read_bytes() == ckpt.read_bytes()
    strict = s.model_copy(
        update={"retrain": s.retrain.model_copy(update={"promotion_margin": 0.5})}
    )
    second = retrain(strict, candidate=ckpt)
    assert not second.promoted and second.production_method == "model"
    assert not previous_path(production).exists()  # nothing promoted the 2nd time
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    broken = retrain(s, candidate=garbage)  # margin -1, yet it loses
    assert not broken.promoted and broken.decision.candidate_score is None
    assert broken.decision.reason.startswith("the candidate failed: cannot load")
    dry = retrain(s, candidate=ckpt, dry_run=True)
    assert dry.decision.promote and not dry.promoted and dry.decision_id is None
    with MetricsReader(s.paths.store) as reader:
        rows = reader.retrain_decisions()
        events = reader.recent_events(kind="retrain")
    assert len(rows) == 3 and len(events) == 3  # the dry run recorded nothing
    refused, kept, promoted = rows
    assert not refused["promoted"] and math.isnan(refused["candidate_score"])
    assert refused["production_score"] == pytest.approx(kept["production_score"])
    assert promoted["promoted"] and promoted["production"] is None
    assert "extrapolation fallback" in promoted["reason"]
    assert promoted["margin"] == -1.0
    assert promoted["candidate"] == str(ckpt.resolve())
    assert not kept["promoted"] and kept["production"] == str(production)
    assert kept["candidate_score"] == pytest.approx(kept["production_score"])
    assert "+ margin 0.5" in kept["reason"]
    production.unlink()


def test_a_trained_candidate_is_judged_with_productions_lead_smoothing(
    archive, tmp_path, monkeypatch
):
    """The training child stands in (it writes a tiny checkpoint where --export
    says); production carries a fitted lead smoothing; the candidate that is
    scored and promoted has it too."""
    from nowcast.model.checkpoint import load_checkpoint, save_checkpoint
    from nowcast.retrain import retraining

    s = archive
    production = s.paths.production_model
    prod = make_checkpoint(tmp_path / "prod.pt", levels=(3,))
    state = load_checkpoint(prod)
    state["lead_smoothing"] = {"spread_m_s": [1.5, 1.0]}
    save_checkpoint(production, state)

    def fake_training(cmd, log_path, timeout_s):
        make_checkpoint(Path(cmd[cmd.index("--export") + 1]), levels=(3,))

    monkeypatch.setattr(retraining, "run_training", fake_training)
    try:
        result = retrain(s, dry_run=True)
        fit = load_checkpoint(result.candidate).get("lead_smoothing")
        assert fit["spread_m_s"] == [1.5, 1.0]
        assert fit["carried_from"] == str(production)
    finally:
        production.unlink()


def test_retrain_refuses_too_few_heldout_sequences_and_records_why(tmp_path):
    s = retrain_workspace(tmp_path, min_heldout_sequences=50)
    fill_archive(s)
    with pytest.raises(RetrainError, match="fewer than retrain.min_heldout_seq"):
        retrain(s)
    with MetricsReader(s.paths.store) as reader:
        events = reader.recent_events()
    assert events[0]["kind"] == "retrain" and events[0]["level"] == "error"
    assert not (s.paths.checkpoints_dir).exists()  # nothing was trained


def test_one_retraining_at_a_time(archive):
    from nowcast.retrain.retraining import exclusive

    lock = archive.paths.state_dir / "retrain" / "lock"
    with exclusive(lock), pytest.raises(RetrainError, match=f"pid {os.getpid()}"):
        retrain(archive, candidate=Path("unused.pt"))


def _nowcast(*args: str, env: dict | None = None, timeout: float = 240):
    return subprocess.run(
        [sys.executable, "-m", "nowcast", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )  # fmt: skip


@pytest.mark.slow
def test_retrain_now_end_to_end(tmp_path):
    """The real command as a child: trains, scores, promotes (negative margin),
    records; a daemon running beside it hot-reloads the promoted model; a second
    decision with a margin keeps production."""
    s = retrain_workspace(tmp_path)
    fill_archive(s)
    clock = FakeClock()
    daemon = Daemon(s, clock=clock)  # the real model provider
    daemon.initialize(clock.now)
    assert daemon.models.current is None  # no model yet: the fallback forecasts
    run = _nowcast("retrain", "--now", "--config", str(s.source), "--log-format", "json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("promoted retrain-"), run.stdout
    production = s.paths.production_model
    assert production.is_file()
    with MetricsReader(s.paths.store) as reader:
        (row,) = reader.retrain_decisions()
        (training,) = reader.training_runs()
    assert row["promoted"] and row["run_id"] == training["run_id"]
    assert training["status"] == "completed" and "--curriculum" in training["command"]
    assert row["candidate_score"] is not None and row["production_score"] is not None
    candidate = Path(row["candidate"])
    assert candidate.parent.parent == s.paths.checkpoints_dir
    assert production.read_bytes() == candidate.read_bytes()
    assert not (s.paths.state_dir / "retrain" / "archive").exists()  # links gone
    logs = list((s.paths.state_dir / "retrain").glob("retrain-*.log"))
    assert len(logs) == 1 and "exported" in logs[0].read_text()
    # the daemon beside it picks the promoted model up and forecasts with it
    report = daemon.step(clock.advance(1))
    assert report.reload is not None and report.reload["ok"], report.reload
    assert daemon.models.current.checkpoint == production
    daemon.shutdown(clock.now)
    # the same model again, with a margin: kept, recorded
    again = _nowcast(
        "retrain", "--candidate", str(candidate), "--config", str(s.source),
        env={"NOWCAST_RETRAIN__PROMOTION_MARGIN": "0.01"},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.startswith("kept production.pt"), again.stdout
    with MetricsReader(s.paths.store) as reader:
        kept = reader.retrain_decisions()[0]
    assert not kept["promoted"] and kept["production"] == str(production)


def test_retrain_now_fails_with_one_line_without_an_archive(tmp_path):
    s = retrain_workspace(tmp_path)
    run = _nowcast("retrain", "--now", "--config", str(s.source), timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("nowcast: error: ")
    assert "no scan archive" in run.stderr
