"""One phase of the curriculum: the epoch loop, validation, checkpoints, records.

Contract
--------
:class:`PhaseTrainer` ``(settings, number, net, data, ...)`` trains the bare
network ``net`` (already on ``dist.device``) through phase ``number``;
:meth:`~PhaseTrainer.run` returns a :class:`PhaseResult`.

Each epoch (global numbers, :func:`~.phases.phase_epochs`):

1. **Train**: the epoch's class-balanced batches (this rank's share); the loss
   is :class:`~.losses.CombinedLoss` with the phase's weights over covered
   voxels (``mask``) whose echo the forecast can know (the advection head's
   prior displacement samples inside the grid: echo flowing in across a crop's
   edge is left out), plus ``motion_loss_weight x`` the endpoint error of the
   advection head's motion against the simulator's true motion on the samples
   that have one (``has_motion``; the mean over the batch, where the target
   column has echo >= 10 dBZ). It is there in every phase, but only simulated
   storms carry it and it matters most in phase 1, when the motion is learned
   from scratch. The weight is 0 by default (off; the endpoint error is still
   logged as the ``motion`` term): the simulator's motion is its objects'
   velocity blended with the wind by echo weight, so at a storm's edge it is
   mostly the wind, while a backward warp needs the storm's motion there
   (BENCHMARKS.md has what warping with it scores). AdamW (see
   :func:`~.phases.make_optimizer` for the advection head's lower residual
   rate), gradient clipping
   when ``grad_clip > 0``; bf16 autocast on CUDA when ``curriculum.bf16`` (the
   cell state and the warp stay float32), float32 on the CPU.
2. **Validate** (every rank its share, sums all-reduced): the loss terms; CSI
   at 35 dBZ per lead (:mod:`.scores`) of the model, of persistence and of the
   optical-flow extrapolation the flow prior implies (with ``[curriculum]
   storm_prior``, the batches' storm-tracked prior alone, the network off, in
   its place: the network runs on that prior, and is scored against it); the
   area ratio at the last lead.
3. **Rules**: the area-ratio rule (mid phase 2, may raise the SSIM weight; it
   then restarts the settle and plateau counters, since the loss changed
   scale), the scheduler step (validation loss), the settle rule.
4. **Best**: before its first epoch a phase validates the weights it starts
   from (``epoch = first_epoch - 1``; the untrained advection head is the
   optical-flow extrapolation, or the previous phase's best); they are the
   first best, so a phase never ends worse than it began. An epoch is the best
   so far when its key
   ``(beats extrapolation, mean model CSI35, -validation loss)`` is the
   largest: a model that is at least as good as the extrapolation it replaces
   (mean CSI35 over leads; a validation without any 35 dBZ event counts as
   beating it) always outranks one that is not; among equals the higher mean
   CSI35 wins, then the lower loss. ``phase{N}_best.pt`` holds that epoch, with
   ``best.beats_extrapolation`` saying whether it beat the extrapolation.
5. **Write** (rank 0): ``phase{N}_last.pt`` every epoch (everything needed to go
   on as if nothing had stopped: weights, optimiser, scheduler, rules, loss
   weights, best so far, RNG states), ``phase{N}_best.pt`` when best, one
   ``train`` and one ``val`` row in the metrics store, a progress line.

After the last epoch (or when settled) the best weights are put back in the
network and, when there are held-out cases, scored on them (model,
extrapolation, persistence); ``phase{N}_best.pt`` is then marked ``finished``
and gets the result as ``holdout``. Resuming: :meth:`PhaseTrainer.load_state`
with a ``_last`` of the same phase continues at the next epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import torch

from nowcast.curriculum.rng import rng_state, set_rng_state
from nowcast.model.checkpoint import save_checkpoint
from nowcast.model.warp import sources_inside, steady_displacements
from nowcast.curriculum.distributed import Dist
from nowcast.curriculum.losses import motion_loss
from nowcast.curriculum.phases import (
    AreaRatioRule,
    PhaseScheduler,
    SettleRule,
    make_loss,
    make_optimizer,
    phase_config,
    phase_epochs,
)
from nowcast.curriculum.progress import Progress
from nowcast.curriculum.records import record_epoch_rows
from nowcast.curriculum.storm_priors import batch_prior
from nowcast.curriculum.scores import (
    CSI_LEVELS_DBZ,
    Tally,
    best_key,
    count_events,
    extrapolate,
    summarise,
)

if TYPE_CHECKING:
    from nowcast.config import Settings

log = structlog.get_logger(__name__)

__all__ = ["PhaseResult", "PhaseTrainer", "checkpoint_paths"]

#: echo (dBZ, column maximum of the target) where the motion loss counts
MOTION_ECHO_DBZ = 10.0
#: the CSI threshold (dBZ)
CSI_DBZ = 35.0


def checkpoint_paths(out_dir: Path, number: int) -> tuple[Path, Path]:
    """``(phase{N}_best.pt, phase{N}_last.pt)`` under ``out_dir``."""
    return out_dir / f"phase{number}_best.pt", out_dir / f"phase{number}_last.pt"


@dataclass
class PhaseResult:
    """What a phase did (rank-independent)."""

    number: int
    first_epoch: int
    last_epoch: int
    settled: bool
    finished: bool
    best: dict[str, Any]
    holdout: dict[str, Any] | None
    best_path: Path
    last_path: Path
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)


class PhaseTrainer:
    """Train one phase (see the module contract)."""

    def __init__(
        self,
        settings: Settings,
        number: int,
        net: torch.nn.Module,
        data: Any,
        *,
        dist: Dist | None = None,
        out_dir: Path,
        epochs: int | None = None,
        store: Any = None,
        run_id: int | None = None,
        progress: Progress | None = None,
        step: int = 0,
        config_json: str = "{}",
    ) -> None:
        self.settings = settings
        cur = settings.curriculum
        self.number = int(number)
        self.phase = phase_config(cur, number)
        self.epochs = phase_epochs(self.phase, epochs)
        self.dist = dist or Dist()
        self.device = self.dist.device
        self.net = net
        self.model = self.dist.wrap(net)
        self.data = data
        self.out_dir = Path(out_dir)
        self.best_path, self.last_path = checkpoint_paths(self.out_dir, number)
        self.store, self.run_id = store, run_id
        self.progress = progress or Progress(enabled=self.dist.is_main, bar=False)
        self.config_json = config_json
        mcfg = settings.model
        self.dbz_min, self.dbz_max = mcfg.dbz_min, mcfg.dbz_max
        span = mcfg.dbz_max - mcfg.dbz_min
        self.csi_threshold = (CSI_DBZ - mcfg.dbz_min) / span
        self.csi_levels = [(d - mcfg.dbz_min) / span for d in CSI_LEVELS_DBZ]
        self.select_by = cur.select_by
        self.echo_threshold = (MOTION_ECHO_DBZ - mcfg.dbz_min) / span
        self.motion_weight = float(cur.motion_loss_weight)
        self.bf16 = bool(cur.bf16) and self.device.startswith("cuda")
        self.interval_s = float(settings.grid.interval_s)
        self.n_leads = int(settings.grid.output_frames)

        self.optimizer = make_optimizer(
            net,
            self.phase,
            self.device,
            settings.curriculum.residual_lr_scale,
            train_motion=settings.curriculum.train_motion,
        )
        self.scheduler = PhaseScheduler(self.optimizer, self.phase, len(self.epochs))
        self.loss = make_loss(cur, self.phase, self.dbz_min, self.dbz_max)
        self.settle = SettleRule(self.phase.settle_patience)
        self.area_rule = AreaRatioRule.for_phase(cur, number, len(self.epochs))
        self.step = int(step)
        self.next_epoch = self.epochs.start
        self.finished = False
        self.settled = False
        self.best: dict[str, Any] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []

    # -- state -------------------------------------------------------------------
    def state(self, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint of the phase after ``epoch`` (see :mod:`.checkpoint`)."""
        return {
            "model": self.net.state_dict(),
            "init_kwargs": copy.deepcopy(self.net.init_kwargs),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "phase": self.number,
            "epoch": int(epoch),
            "epochs": [self.epochs.start, self.epochs.stop],
            "step": self.step,
            "finished": self.finished,
            "settled": self.settled,
            "best": dict(self.best),
            "rules": {
                "settle": self.settle.state_dict(),
                "area_ratio": self.area_rule.state_dict(),
                "ssim_weight": self.loss.ssim_weight,
                "high_penalty_weight": self.loss.high_penalty_weight,
            },
            "metrics": metrics,
            "data": {
                "levels": list(self.data.levels),
                "grids": [list(g) for g in self.data.grids],
                "dbz_min": self.dbz_min,
                "dbz_max": self.dbz_max,
                "input_frames": int(self.net.init_kwargs["in_frames"]),
                "output_frames": int(self.net.init_kwargs["out_frames"]),
                "interval_s": self.interval_s,
            },
            "config": self.config_json,
            "run_id": self.run_id,
            "rng": rng_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue a phase from its ``_last`` checkpoint (weights loaded too)."""
        if int(state["phase"]) != self.number:
            raise ValueError(f"checkpoint of phase {state['phase']}, not {self.number}")
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rules = state["rules"]
        self.settle.load_state_dict(rules["settle"])
        self.area_rule.load_state_dict(rules["area_ratio"])
        self.loss.ssim_weight = float(rules["ssim_weight"])
        self.loss.high_penalty_weight = float(rules["high_penalty_weight"])
        self.step = int(state["step"])
        self.next_epoch = int(state["epoch"]) + 1
        self.finished = bool(state["finished"])
        self.settled = bool(state.get("settled", False))
        self.best = dict(state["best"])
        if self.best_path.is_file() and self.best:
            from nowcast.model.checkpoint import load_checkpoint

            best = load_checkpoint(self.best_path)
            if int(best["epoch"]) == int(self.best.get("epoch", -1)):
                self.best_state = best["model"]
        set_rng_state(state["rng"])

    # -- one epoch -------------------------------------------------------------
    def _autocast(self):
        if self.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        keys = ("inputs", "targets", "mask", "flow", "motion", "has_motion")
        out = {k: batch[k].to(self.device, non_blocking=True) for k in keys}
        out["any_motion"] = bool(batch["has_motion"].any())  # on the CPU: no sync
        out["prior"] = batch_prior(batch, self.device)  # [curriculum] storm_prior
        return out

    def _forward(self, model, b: dict[str, torch.Tensor]):
        flow = b["flow"] if self.net.flow_input else None
        with self._autocast():
            if b["prior"] is None:
                out = model(b["inputs"], flow)
            else:
                out = model(b["inputs"], flow, b["prior"])
        terms = self.loss(out.frames, b["targets"], self._loss_mask(b))
        motion = torch.zeros((), device=b["inputs"].device)
        sel = b["has_motion"] > 0
        if out.motion is not None and b["any_motion"]:
            echo = b["targets"][sel].amax(dim=2) >= self.echo_threshold
            epe = motion_loss(out.motion[sel], b["motion"][sel], mask=echo)
            motion = epe * (sel.sum() / sel.numel())
        terms["motion"] = motion
        terms["total"] = terms["total"] + self.motion_weight * motion
        return out, terms

    def _loss_mask(self, b: dict[str, Any]) -> torch.Tensor:
        """Covered target voxels whose echo the forecast could know: where the
        prior's (or the flow's) displacement samples inside the grid. Echo that
        flows in across the edge of a crop or of the grid is nobody's to
        forecast; the loss leaves it out (the CSI does not)."""
        mask = b["mask"]
        if self.net.head != "advection" or not self.net.flow_input:
            return mask
        if b["prior"] is not None:
            disp = b["prior"].disp[:, : mask.shape[1]]
        else:
            disp = steady_displacements(b["flow"], mask.shape[1])
        return mask * sources_inside(disp).unsqueeze(2).to(mask.dtype)

    def train_epoch(self, epoch: int) -> Tally:
        self.net.train()
        self.data.set_epoch(epoch)
        loader = self.data.train_loader(self.dist.rank, self.dist.world)
        self.progress.start_epoch(self.number, epoch, len(loader))
        tally = Tally(self.n_leads, self.device)
        clip = self.phase.grad_clip
        for batch in loader:
            b = self._batch(batch)
            _, terms = self._forward(self.model, b)
            self.optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), clip)
            self.optimizer.step()
            self.step += 1
            tally.add_losses(terms, b["inputs"].shape[0])
            if self.progress.bar:  # a number for the bar costs a device sync
                self.progress.advance(float(terms["total"].detach()))
        tally.all_reduce()
        return tally

    @torch.no_grad()
    def evaluate(self, which: str = "validation") -> Tally:
        """Score the bare network on ``validation`` or ``holdout`` (all ranks)."""
        self.net.eval()
        tally = Tally(self.n_leads, self.device)
        thr = self.csi_threshold
        for loader in self.data.eval_loaders(which, self.dist.rank, self.dist.world):
            for batch in loader:
                b = self._batch(batch)
                out, terms = self._forward(self.net, b)
                n = b["inputs"].shape[0]
                tally.add_losses(terms, n)
                target, mask = b["targets"], b["mask"]
                t = target.shape[1]
                last = b["inputs"][:, -1]
                persistence = last.unsqueeze(1).expand(-1, t, -1, -1, -1)
                if b["prior"] is None:
                    extrap = extrapolate(last, b["flow"], t)
                else:  # the storm-tracked prior alone: what the network starts from
                    extrap = self.net(
                        b["inputs"], b["flow"], b["prior"], network=False
                    ).frames
                for name, pred in (
                    ("model", out.frames),
                    ("persistence", persistence),
                    ("extrapolation", extrap),
                ):
                    for level, value in enumerate(self.csi_levels):
                        tally.add_events(
                            name, count_events(pred, target, mask, value), level
                        )
                tally.add_area(out.frames, target, mask, thr)
        tally.all_reduce()
        return tally

    # -- the loop -----------------------------------------------------------
    def run(self, stop_after: int | None = None) -> PhaseResult:
        """Train to the end of the phase (or ``stop_after`` epochs of this call,
        as if killed after writing them)."""
        done = 0
        if not self.best and self.next_epoch == self.epochs.start:
            self._start()
        for epoch in range(self.next_epoch, self.epochs.stop):
            if self.finished or (stop_after is not None and done >= stop_after):
                break
            self._epoch(epoch)
            done += 1
        self.progress.close()
        holdout = self._finish() if self.finished else None
        return PhaseResult(
            number=self.number,
            first_epoch=self.epochs.start,
            last_epoch=self.next_epoch - 1,
            settled=self.settled,
            finished=self.finished,
            best=dict(self.best),
            holdout=holdout,
            best_path=self.best_path,
            last_path=self.last_path,
            step=self.step,
            history=self.history,
        )

    def _start(self) -> None:
        """Validate the starting weights: the first best of the phase."""
        val = summarise(self.evaluate("validation"))
        epoch = self.epochs.start - 1
        key = best_key(val, self.select_by)
        self.best = {"epoch": epoch, "key": key, "start": True, **val}
        self.best_state = {
            k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()
        }
        if self.dist.is_main:
            save_checkpoint(self.best_path, self.state(epoch, val))
            self.progress.note(
                "starting weights",
                phase=self.number,
                val_loss=val["loss"],
                csi35=val["csi35_mean"],
                csi35_extrapolation=val["csi35_extrapolation_mean"],
            )

    def _epoch(self, epoch: int) -> None:
        t0 = time.perf_counter()
        lr = self.scheduler.lr
        train = self.train_epoch(epoch)
        t1 = time.perf_counter()
        self.progress.validating()
        val = summarise(self.evaluate("validation"))
        t2 = time.perf_counter()
        index = epoch - self.epochs.start
        message = self.area_rule.update(index, val["area_ratio"], self.loss)
        if message:
            self.settle.best, self.settle.since = math.inf, 0
            self.scheduler.restart_plateau()
        self.scheduler.step(val["loss"])
        self.settled = self.settle.update(val["loss"])
        self.finished = self.settled or epoch == self.epochs.stop - 1
        self.next_epoch = epoch + 1
        is_best = not self.best or best_key(val, self.select_by) > self.best["key"]
        if is_best:
            self.best = {"epoch": epoch, "key": best_key(val, self.select_by), **val}
            self.best_state = {
                k: v.detach().to("cpu", copy=True)
                for k, v in self.net.state_dict().items()
            }
        train_losses = train.losses()
        row = {
            "phase": self.number,
            "epoch": epoch,
            "lr": lr,
            "train_loss": train_losses["total"],
            "val_loss": val["loss"],
            "csi35": val["csi35_mean"],
            "csi35_extrapolation": val["csi35_extrapolation_mean"],
            "csi35_persistence": val["csi35_persistence_mean"],
            "csi20": val["csi20_mean"],
            "csi20_extrapolation": val["csi20_extrapolation_mean"],
            "area_ratio": val["area_ratio"],
            "best": is_best,
            "seconds": round(t2 - t0, 2),
        }
        self.history.append({**row, "train_terms": train_losses, "val": val})
        if not self.dist.is_main:
            return
        state = self.state(epoch, val)
        save_checkpoint(self.last_path, state)
        if is_best:
            save_checkpoint(self.best_path, state)
        if self.store is not None and self.run_id is not None:
            record_epoch_rows(
                self.store,
                self.run_id,
                self.number,
                epoch,
                lr,
                train_losses,
                val,
                t1 - t0,
                t2 - t1,
                self.interval_s,
            )
        if message:
            self._event("info", f"phase {self.number} epoch {epoch}: {message}")
            self.progress.note("SSIM weight raised", detail=message)
        if self.settled:
            self.progress.note(
                "phase settled",
                phase=self.number,
                epoch=epoch,
                patience=self.settle.patience,
            )
        self.progress.end_epoch(row)

    def _event(self, level: str, message: str) -> None:
        log.info("curriculum", message=message)
        if self.store is not None:
            self.store.record_event(level, "training", message)

    def _finish(self) -> dict[str, Any] | None:
        """Put the best weights back; score them on the held-out cases; mark
        ``phase{N}_best.pt`` finished (with the held-out scores)."""
        if self.best_state is not None:
            self.net.load_state_dict(self.best_state)
        result = None
        if self.data.holdout:
            result = summarise(self.evaluate("holdout"))
        if not self.dist.is_main or not self.best_path.is_file():
            return result
        from nowcast.model.checkpoint import load_checkpoint

        state = load_checkpoint(self.best_path)
        state.update(finished=True, settled=self.settled, holdout=result)
        save_checkpoint(self.best_path, state)
        if result is not None:
            which = (
                "the starting weights"
                if self.best.get("start")
                else f"epoch {self.best.get('epoch')}"
            )
            self._event(
                "info",
                f"phase {self.number} best ({which}) on "
                f"held-out cases: CSI35 {result['csi35_mean']:.3f} vs extrapolation "
                f"{result['csi35_extrapolation_mean']:.3f}, persistence "
                f"{result['csi35_persistence_mean']:.3f}",
            )
        return result
