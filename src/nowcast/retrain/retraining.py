"""One retraining: split, train, score, decide, promote, record.

Contract
--------
:func:`retrain` ``(settings, *, candidate=None, dry_run=False)`` ->
:class:`RetrainResult` is what ``nowcast retrain --now`` runs, by hand or as the
daemon's nightly job:

1. **One at a time**: an exclusive lock on ``state_dir/retrain/lock``; while
   another retraining holds it, :class:`~nowcast.errors.RetrainError` names its pid.
2. **Priority**: this process's niceness is raised to ``retrain.nice`` (never
   lowered); the training child inherits it.
3. **Split** the archive (:mod:`.split`) and count the held-out sequences from the
   scan times (:func:`.heldout.heldout_sequences`) *before* training: fewer than
   ``retrain.min_heldout_sequences`` is a ``RetrainError`` (nothing is trained
   that could not be judged).
4. **Train**, unless ``candidate`` names a checkpoint: links to the training scans
   in ``state_dir/retrain/archive`` (removed afterwards), the child (:mod:`.child`)
   writing ``checkpoints_dir/retrain-STAMP/`` and the candidate
   ``checkpoints_dir/retrain-STAMP/retrain-STAMP.pt``, its archive cache in
   ``state_dir/retrain/cache``, its log in ``state_dir/retrain/retrain-STAMP.log``
   (STAMP: the start, UTC ``yyyymmddThhmmssZ``). A trained candidate without a
   lead smoothing takes production's
   (:func:`~nowcast.forecasters.lead_smoothing.carry_smoothing`), so both are
   judged with it.
5. **Score** candidate and production on the held-out sequences
   (:mod:`.heldout`), both on ``daemon.device``. *Production* is what the daemon
   would run, loaded by a :class:`~nowcast.daemon.models.ModelManager` as the
   daemon loads it (test forecast included): ``paths.production_model``, or when
   that is missing or fails, the daemon's fallback forecaster; a model forecast
   that fails is replaced by the fallback's, as in the daemon. The *candidate* is
   loaded the same way but never stood in for: if it cannot load or run, it loses
   (a decision, recorded with the reason).
6. **Decide** (:mod:`.decide`) and, unless ``dry_run``, **promote**
   (:mod:`.promote`): the daemon's hot reload then picks the new file up.
7. **Record**, unless ``dry_run``: the decision in the metrics store
   (:meth:`~nowcast.store.MetricsStore.record_retrain_decision`: candidate,
   production (None when the fallback stood in), both scores, margin, promoted,
   reason, and the child's training run), an ``info`` event ``retrain``, and a log
   line. A failure of steps 3 to 6 is recorded as an ``error`` event ``retrain``
   and raised as a ``RetrainError``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from nowcast.forecasters.interface import Forecaster
from nowcast.forecasters.lead_smoothing import carry_smoothing
from nowcast.errors import NowcastError, RetrainError
from nowcast.retrain.child import run_training, train_command
from nowcast.retrain.decide import Decision, decide
from nowcast.retrain.heldout import (
    HeldOutResult,
    Skill,
    heldout_sequences,
    score_heldout,
)
from nowcast.retrain.promote import promote
from nowcast.retrain.split import ArchiveSplit, split_archive, stage_links

if TYPE_CHECKING:
    from nowcast.config import Settings

log = structlog.get_logger(__name__)


@dataclass
class RetrainResult:
    """What one retraining decided and did."""

    decision: Decision
    candidate: Path
    production: Path
    production_method: str  # "model", or the fallback that stood in for it
    promoted: bool = False
    dry_run: bool = False
    previous: Path | None = None
    decision_id: int | None = None
    run_id: int | None = None
    log: Path | None = None
    split: dict[str, Any] = field(default_factory=dict)
    sequences: int = 0

    def line(self) -> str:
        """One line for the operator."""
        d = self.decision
        if self.dry_run:
            verb = "would promote" if d.promote else "would keep production"
            text = f"dry run: {verb} {self.candidate.name}: {d.reason}"
        elif self.promoted:
            text = f"promoted {self.candidate.name} to {self.production}: {d.reason}"
            if self.previous is not None:
                text += f"; the old model is {self.previous.name}"
        else:
            text = f"kept {self.production.name}, not {self.candidate.name}: {d.reason}"
        if self.production_method != "model":
            text += f" [production scored as the {self.production_method} fallback]"
        return text


def utc_stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (holding our pid), or raise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            pid = fh.read().strip() or "?"
            raise RetrainError(
                f"another retraining is running (pid {pid}; lock {path})"
            ) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def lower_priority(nice: int) -> int:
    """Raise this process's niceness to ``nice`` (never lower it); the result."""
    current = os.nice(0)
    if nice > current:
        try:
            return os.nice(nice - current)
        except OSError:
            return current
    return current


def _managers(settings: Settings, candidate: Path, split: ArchiveSplit, seqs, now):
    """ModelManagers for production and the candidate, probed on held-out scans."""
    from nowcast.radar.pooled import read_pooled, reading_options
    from nowcast.daemon.models import ModelManager, model_provider
    from nowcast.model.device import resolve_device

    g = settings.grid
    for seq in seqs:  # the first sequence that reads
        first = [split.heldout[i] for i in seq[: g.input_frames]]
        try:
            options = reading_options(settings.radar)
            probe_scans = [
                read_pooled(p, g.pool_factor, **options) for _, p in first
            ]
            break
        except NowcastError:
            continue
    else:
        raise RetrainError("no held-out sequence can be read (see the log)")

    def probe(_forecaster):
        frames = np.stack([f for _, f in probe_scans])
        dx = probe_scans[-1][0].grid.pooled(g.pool_factor).dx_m
        return frames, [t for t, _ in first], dx

    device = resolve_device(settings.daemon.device, fallback_to_cpu=True)
    provider = model_provider(settings)
    production = ModelManager.from_settings(settings, provider, device, probe)
    production.start(now)
    contender = ModelManager.from_settings(
        settings, provider, device, probe, checkpoint=candidate
    )
    contender.reload(now)
    return production, contender


def _score(
    settings: Settings, candidate: Path, split: ArchiveSplit, seqs, now: datetime
) -> tuple[HeldOutResult, str]:
    production, contender = _managers(settings, candidate, split, seqs, now)
    forecasters: dict[str, Forecaster] = {"production": production.production()[0]}
    if contender.current is not None:
        forecasters["candidate"] = contender.current.forecaster
    result = score_heldout(
        forecasters,
        [p for _, p in split.heldout],
        [t for t, _ in split.heldout],
        seqs,
        settings,
    )
    if contender.current is None:  # it loses, and the decision says why
        leads = result.skills["production"].leads_s
        message = contender.last_reload["message"]
        result.skills["candidate"] = Skill(leads, error=message)
    method = (
        "model"
        if production.current is not None
        else (production.fallback().name or "fallback")
    )
    return result, method


def _train(settings: Settings, split: ArchiveSplit, stamp: str) -> tuple[Path, Path]:
    """Run the child on the training scans; returns (candidate, log)."""
    p = settings.paths
    work = Path(p.state_dir) / "retrain"
    staged = stage_links(split.train, split.root, work / "archive")
    out_dir = Path(p.checkpoints_dir) / f"retrain-{stamp}"
    candidate = out_dir / f"retrain-{stamp}.pt"
    log_path = work / f"retrain-{stamp}.log"
    cmd = train_command(settings, staged, out_dir, candidate, work / "cache")
    log.info(
        "retraining: training",
        scans=len(split.train),
        log=str(log_path),
        command=" ".join(cmd),
    )
    try:
        run_training(cmd, log_path, settings.retrain.timeout_s)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if not candidate.is_file():
        raise RetrainError(
            f"training ended without exporting {candidate} (log: {log_path})"
        )
    if carry_smoothing(p.production_model, candidate):
        log.info("retraining: the candidate takes production's lead smoothing",
                 production=str(p.production_model))
    return candidate, log_path


def _run_id(settings: Settings, candidate: Path) -> int | None:
    from nowcast.store import MetricsReader

    try:
        with MetricsReader(settings.paths.store) as reader:
            runs = reader.training_runs(20)
    except (NowcastError, OSError):  # the link to the run is a nicety
        return None
    for run in runs:
        if str(candidate.parent) in (run.get("command") or ""):
            return int(run["run_id"])
    return None


def _record(settings: Settings, level: str, message: str, result: RetrainResult | None):
    from nowcast.store import MetricsStore

    with MetricsStore(settings.paths.store) as store:
        if result is not None:
            d = result.decision
            result.decision_id = store.record_retrain_decision(
                result.candidate,
                result.production if result.production_method == "model" else None,
                d.candidate_score,
                d.production_score,
                d.margin,
                result.promoted,
                d.reason
                if result.production_method == "model"
                else f"{d.reason}; production scored as the "
                f"{result.production_method} fallback",
                run_id=result.run_id,
            )
        store.record_event(level, "retrain", message[:1000])


def retrain(
    settings: Settings,
    *,
    candidate: Path | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetrainResult:
    """One retraining (see the module contract)."""
    now = now or datetime.now(UTC)
    work = Path(settings.paths.state_dir) / "retrain"
    with exclusive(work / "lock"):
        lower_priority(settings.retrain.nice)
        try:
            result = _retrain(settings, candidate, dry_run, now)
        except (NowcastError, OSError) as exc:
            message = f"retraining failed: {exc}"
            log.error("retraining failed", error=str(exc))
            if not dry_run:
                with contextlib.suppress(Exception):
                    _record(settings, "error", message, None)
            if isinstance(exc, RetrainError):
                raise
            raise RetrainError(message) from exc
    if not dry_run:
        _record(settings, "info", result.line(), result)
    log.info(
        "retraining decided",
        promoted=result.promoted,
        dry_run=dry_run,
        candidate=str(result.candidate),
        candidate_score=result.decision.candidate_score,
        production_score=result.decision.production_score,
        reason=result.decision.reason,
    )
    return result


def _retrain(settings, candidate, dry_run, now) -> RetrainResult:
    r = settings.retrain
    split = split_archive(settings)
    seqs = heldout_sequences([t for t, _ in split.heldout], settings)
    if len(seqs) < r.min_heldout_sequences:
        raise RetrainError(
            f"the held-out days ({len(split.heldout)} scans from "
            f"{split.heldout[0][0]:%F %H:%MZ}) give {len(seqs)} sequences of "
            f"{settings.grid.input_frames} + {settings.grid.output_frames} scans, "
            f"fewer than retrain.min_heldout_sequences = {r.min_heldout_sequences}"
        )
    log_path = None
    if candidate is None:
        candidate, log_path = _train(settings, split, utc_stamp(now))
    elif not Path(candidate).is_file():
        raise RetrainError(f"{candidate}: no such checkpoint (--candidate)")
    candidate = Path(candidate).resolve()
    scored, method = _score(settings, candidate, split, seqs, now)
    decision = decide(
        scored.skills["candidate"],
        scored.skills["production"],
        r.promotion_margin,
        r.min_heldout_sequences,
    )
    production = Path(settings.paths.production_model)
    result = RetrainResult(
        decision,
        candidate,
        production,
        method,
        dry_run=dry_run,
        log=log_path,
        split=split.describe(),
        sequences=scored.sequences,
        run_id=_run_id(settings, candidate) if log_path is not None else None,
    )
    if decision.promote and not dry_run:
        result.previous = promote(candidate, production)
        result.promoted = True
    return result
