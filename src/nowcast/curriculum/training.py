"""Run phases: one (``--phase N``) or all three in order (``--curriculum``).

Contract
--------
:func:`train` ``(settings, TrainRequest) -> TrainSummary`` is what ``nowcast
train`` (and the nightly retrainer) calls.

- **Start**: joins torchrun's process group when started by it
  (:mod:`.distributed`), seeds torch, NumPy and ``random`` with
  ``curriculum.seed``, builds the data (:func:`.loaders.build_data`; rank 0
  builds the archive cache first), and the network from ``[model]`` (or from
  the checkpoint given, whose architecture wins).
- **Resume** (``resume_from``), by what the checkpoint holds:

  - a phase ``p`` that is not finished (a ``_last`` of a stopped run), when
    ``p`` is among the phases asked for: that phase goes on at its next epoch,
    with its optimiser, scheduler, rules and RNG states, exactly as if it had
    not stopped (its length too, unless ``--epochs`` says otherwise);
  - otherwise its weights start the first phase asked for after ``p``
    (``--phase 2 --resume-from phase1_best.pt``; ``--curriculum`` from a
    finished phase ``p`` goes on with ``p + 1``) with a fresh optimiser and
    schedule. A ``_best`` is marked finished when its phase ends;
  - a checkpoint of the last phase asked for, finished, or of a later phase,
    is refused.

- **Phases in order**: after each phase the next starts from its best weights
  (the same as resuming from ``phase{N}_best.pt``). Settings that do not change
  the weights (``checkpoint_activations``, ``compile``) come from the current
  config.
- **Records**: rank 0 opens the metrics store (``paths.store``), starts a
  training run (its command and config), and closes it ``completed`` (with the
  summary line), ``interrupted`` (Ctrl-C, or ``stop_after``) or ``failed``.
- **Export** (``export``): the best checkpoint of the last phase run, without
  optimiser and RNG state, written atomically (e.g. ``models/demo3d.pt``), with
  its training history (:mod:`.history`: the runs the starting checkpoint carried
  and this one, every epoch row), so a shipped model shows how it was trained.
- ``curriculum.channels_last``: the weights in channels-last 3D layout (the
  convolutions follow it; on the CPU the backward of thin convolutions is many
  times faster, on CUDA it is the tensor cores' layout). CUDA: ``cudnn.benchmark``
  on; ``curriculum.compile`` compiles the cell steps.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog
import torch

from nowcast.model.checkpoint import (
    build_from_state,
    load_checkpoint,
    meta_of,
    save_checkpoint,
)
from nowcast.curriculum.distributed import Dist, setup
from nowcast.curriculum.model_history import export_history
from nowcast.curriculum.loaders import DataSpec, TrainData, build_data
from nowcast.curriculum.progress import Progress
from nowcast.curriculum.trainer import PhaseResult, PhaseTrainer
from nowcast.errors import NowcastError

if TYPE_CHECKING:
    from nowcast.config import Settings

log = structlog.get_logger(__name__)

__all__ = ["TrainRequest", "TrainSummary", "train"]


@dataclass
class TrainRequest:
    """What to run (the ``nowcast train`` options)."""

    phases: list[int]
    data: DataSpec
    out_dir: Path
    resume_from: Path | None = None
    epochs: int | None = None
    device: str = "auto"
    export: Path | None = None
    command: str = ""
    stop_after: int | None = None
    progress_bar: bool | None = None


@dataclass
class TrainSummary:
    """What the run did (every rank holds the same)."""

    phases: list[PhaseResult] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    exported: Path | None = None
    interrupted: bool = False
    is_main: bool = True

    def lines(self) -> list[str]:
        """The human summary (one line a phase and a verdict)."""
        out = []
        for r in self.phases:
            b = r.best
            which = (
                "the starting weights (no epoch did better)"
                if b.get("start")
                else f"epoch {b.get('epoch')}"
            )
            verdict = (
                "beats extrapolation"
                if b.get("beats_extrapolation")
                else "does NOT beat extrapolation"
            )
            line = (
                f"phase {r.number}: epochs {r.first_epoch}-{r.last_epoch}"
                f"{' (settled)' if r.settled else ''}"
                f"{'' if r.finished else ' (not finished)'}; best: {which}: "
                f"val loss {_f(b.get('loss'))}, CSI35 {_f(b.get('csi35_mean'))} vs "
                f"extrapolation {_f(b.get('csi35_extrapolation_mean'))}, "
                f"persistence {_f(b.get('csi35_persistence_mean'))}; {verdict} "
                f"-> {r.best_path}"
            )
            out.append(line)
            if r.holdout:
                h = r.holdout
                out.append(
                    f"  held-out cases: CSI35 {_f(h['csi35_mean'])} vs extrapolation "
                    f"{_f(h['csi35_extrapolation_mean'])}, persistence "
                    f"{_f(h['csi35_persistence_mean'])} ("
                    + ("beats" if h["beats_extrapolation"] else "does NOT beat")
                    + " extrapolation)"
                )
            leads = ", ".join(_f(v) for v in b.get("csi35", []))
            out.append(f"  CSI35 per lead: {leads}")
        if self.exported:
            out.append(f"exported {self.exported}")
        return out


def _f(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "nan" if v != v else f"{v:.4g}"


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _plan(request: TrainRequest, state: dict[str, Any] | None):
    """``[(phase, resume_state_or_None)]`` and the weights-only start state."""
    phases = sorted(request.phases)
    if state is None:
        return [(p, None) for p in phases], None
    p, finished = int(state["phase"]), bool(state.get("finished", False))
    if not finished and p in phases:
        plan = [(q, state if q == p else None) for q in phases if q >= p]
        return plan, None
    later = [q for q in phases if q > p]
    if not later:
        raise NowcastError(
            f"{request.resume_from}: phase {p} is finished; start phase {p + 1} "
            f"from it (--phase {p + 1})"
            if p < 3
            else f"{request.resume_from}: phase 3 is finished: nothing left to train"
        )
    if not finished:
        log.warning(
            "starting a later phase from an unfinished one",
            checkpoint=str(request.resume_from),
            phase=p,
            epoch=state["epoch"],
        )
    return [(q, None) for q in later], state


def _phase_length(request: TrainRequest, resume: dict[str, Any] | None):
    """``--epochs``; a resumed phase keeps the length it was started with."""
    if resume is None or "epochs" not in resume:
        return request.epochs
    start, stop = (int(v) for v in resume["epochs"])
    if request.epochs is not None and request.epochs != stop - start:
        log.warning(
            "resuming with another phase length: the schedule changes",
            was=stop - start,
            now=request.epochs,
        )
        return request.epochs
    return stop - start


def _build_net(settings: Settings, state: dict[str, Any] | None, path: Path | None):
    from nowcast.model import build_network, network_kwargs

    cur = settings.curriculum
    if state is not None:
        net = build_from_state(
            state, path, checkpoint_steps=bool(cur.checkpoint_activations)
        )
        wanted = network_kwargs(settings.model)
        got = state["init_kwargs"]
        if any(
            json.dumps(wanted[k]) != json.dumps(got.get(k))
            for k in ("hidden_channels", "stem_channels", "head", "flow_input")
        ):
            log.warning(
                "the checkpoint's network differs from [model]: the checkpoint wins",
                checkpoint=str(path),
            )
        return net
    grid = settings.grid
    return build_network(
        **network_kwargs(
            settings.model,
            in_frames=grid.input_frames,
            out_frames=grid.output_frames,
            checkpoint_steps=bool(cur.checkpoint_activations),
        )
    )


def _open_store(settings: Settings, request: TrainRequest):
    from nowcast.store import MetricsStore

    store = MetricsStore(settings.paths.store)
    run_id = store.start_training_run(
        command=request.command or "nowcast train", config=settings
    )
    return store, run_id


def _data(settings: Settings, spec: DataSpec, dist: Dist) -> TrainData:
    if dist.world > 1 and spec.data_dirs and not spec.cache_only:
        if dist.is_main:
            data = build_data(settings, spec)
        dist.barrier()
        if not dist.is_main:
            data = build_data(settings, spec)
        return data
    return build_data(settings, spec)


def _export(path: Path, best: Path, history: list[dict[str, Any]]) -> Path:
    state = load_checkpoint(best)
    slim = meta_of(state)
    slim.update(model=state["model"], optimizer=None, scheduler=None)
    slim["exported_from"] = str(best)
    slim["history"] = history
    save_checkpoint(path, slim)
    return path


def _configure_torch(device: str) -> None:
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _place_net(settings: Settings, net, start, device: str):
    """The network with its starting weights, on the device, as configured."""
    if start is not None:
        net.load_state_dict(start["model"])
    net = net.to(device)
    if settings.curriculum.channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    if settings.curriculum.compile:
        net.compile_cells()
    return net


def _run_phases(
    settings: Settings, request: TrainRequest, plan, net, data, dist: Dist,
    store, run_id, step: int, summary: TrainSummary,
) -> None:
    """Each planned phase in order; stops at the first that did not finish."""
    progress = Progress(enabled=dist.is_main, bar=request.progress_bar)
    config_json = settings.model_dump_json(exclude={"source"})
    for number, resume in plan:
        trainer = PhaseTrainer(
            settings,
            number,
            net,
            data,
            dist=dist,
            out_dir=request.out_dir,
            epochs=_phase_length(request, resume),
            store=store,
            run_id=run_id,
            progress=progress,
            step=step,
            config_json=config_json,
        )
        if resume is not None:
            trainer.load_state(resume)
        result = trainer.run(stop_after=request.stop_after)
        summary.phases.append(result)
        step = result.step
        if not result.finished:
            summary.interrupted = True
            break


def train(settings: Settings, request: TrainRequest) -> TrainSummary:
    """Run the requested phases (see the module contract)."""
    if not request.phases:
        raise NowcastError("no phase to train: give --phase N or --curriculum")
    dist = setup(request.device)
    summary = TrainSummary(is_main=dist.is_main)
    store = run_id = None
    try:
        _seed(settings.curriculum.seed)
        _configure_torch(dist.device)
        state = None
        if request.resume_from is not None:
            state = load_checkpoint(request.resume_from)
        plan, start = _plan(request, state)
        data = _data(settings, request.data, dist)
        summary.data = dict(data.describe)
        data.pin_memory = dist.device.startswith("cuda")
        net = _build_net(settings, state or start, request.resume_from)
        net = _place_net(settings, net, start, dist.device)
        if dist.is_main:
            store, run_id = _open_store(settings, request)
            summary.run_id = run_id
            log.info(
                "training",
                phases=[p for p, _ in plan],
                device=dist.device,
                world=dist.world,
                resume_from=str(request.resume_from or ""),
                params=sum(p.numel() for p in net.parameters()),
                **summary.data,
            )
        step = int((state or start or {}).get("step", 0))
        _run_phases(
            settings, request, plan, net, data, dist, store, run_id, step, summary
        )
        last = summary.phases[-1] if summary.phases else None
        if store is not None:
            status = "interrupted" if summary.interrupted else "completed"
            message = "; ".join(summary.lines()[:1] + summary.lines()[-1:])
            store.finish_training_run(run_id, status, message[:1000])
        if dist.is_main and request.export and last and last.best_path.is_file():
            prior = (state or {}).get("history")
            history = export_history(prior, settings.paths.store, run_id)
            summary.exported = _export(request.export, last.best_path, history)
        return summary
    except KeyboardInterrupt:
        if store is not None:
            store.finish_training_run(run_id, "interrupted", "stopped by the user")
        raise
    except BaseException as exc:
        if store is not None:
            store.finish_training_run(run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if store is not None:
            store.close()
        dist.close()
        sys.stderr.flush()
