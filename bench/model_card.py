"""The training part of a model card, from the history the exported model carries.

Run::

    python bench/model_card.py models/real2d.pt

Prints, as Markdown, what :mod:`nowcast.curriculum.model_history` put in the checkpoint:
each training run (command, start, wall time, status, summary) and one row an epoch:
phase, learning rate, train and validation loss, validation CSI at 35 dBZ (mean over
leads) of the model against the optical-flow extrapolation and persistence, the
area ratio at the last lead, and the epoch's seconds. Also the architecture, the
level counts it was trained on and the held-out scores of its last phase.
"""

from __future__ import annotations

import argparse
import math
from datetime import datetime
from pathlib import Path


def _f(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 else f"{value:.{digits}f}"


def _lr(value) -> str:
    return "-" if value is None else f"{value:.2g}"


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def card(path: Path) -> str:
    from nowcast.model.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    out = [f"### {path.name}: how it was trained", ""]
    params = sum(t.numel() for t in state["model"].values())
    out.append(f"- architecture: `{state['init_kwargs']}` ({params:,} parameters)")
    data = state.get("data") or {}
    if data:
        out.append(f"- data: `{data}`")
    hold = state.get("holdout")
    if hold:
        out.append(
            "- held-out cases, CSI35 mean over leads: model "
            f"{_f(hold.get('csi35_mean'))}, extrapolation "
            f"{_f(hold.get('csi35_extrapolation_mean'))}, persistence "
            f"{_f(hold.get('csi35_persistence_mean'))}"
        )
    fit = state.get("lead_smoothing")
    if fit:
        sources = ", ".join(f"{k} {v}" for k, v in (fit.get("sources") or {}).items())
        out.append(
            f"- lead smoothing ({fit.get('mode', 'blur')}): spread by lead "
            f"{fit.get('spread_m_s')} m/s, fitted on {fit.get('windows')} windows"
            + (f" ({sources})" if sources else "")
            + (f": `{fit['command']}`" if fit.get("command") else "")
        )
    head = state.get("smoothing_head")
    if head:
        windows = head.get("windows") or {}
        out.append(
            f"- smoothing head ({head.get('mode')}): bank {head.get('bank_m_s')} m/s, "
            f"{head.get('init_kwargs')}, trained on {head.get('trained_on')} "
            f"({windows.get('train')} windows), chosen on {head.get('validated_on')} "
            f"({windows.get('validate')}) at epoch {head.get('epoch')}"
            + (f": `{head['command']}`" if head.get("command") else "")
        )
    for run in state.get("history") or []:
        started = datetime.fromisoformat(run["started"])
        finished = run.get("finished")
        minutes = (
            (datetime.fromisoformat(finished) - started).total_seconds() / 60
            if finished
            else None
        )
        wall = "-" if minutes is None else f"{minutes:.1f} min"
        out += [
            "",
            f"Run started {started:%Y-%m-%d %H:%M}Z, {wall}, {run.get('status')}:",
            "",
            f"    {run.get('command')}",
            "",
            "| phase | epoch | lr | train loss | val loss | val CSI35 | extrapolation "
            "| persistence | area ratio | s |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        rows: dict[int, dict] = {}
        for row in run.get("epochs", []):
            rows.setdefault(row["epoch"], {})[row["split"]] = row
        for epoch in sorted(rows):
            tr, va = rows[epoch].get("train", {}), rows[epoch].get("val", {})
            terms = va.get("terms") or {}
            seconds = (tr.get("seconds") or 0) + (va.get("seconds") or 0)
            out.append(
                f"| {va.get('phase', tr.get('phase'))} | {epoch} | {_lr(tr.get('lr'))} "
                f"| {_f(tr.get('loss'))} | {_f(va.get('loss'))} "
                f"| {_f(_mean((va.get('csi35') or {}).values()))} "
                f"| {_f(terms.get('csi35_extrapolation'))} "
                f"| {_f(terms.get('csi35_persistence'))} "
                f"| {_f(va.get('area_ratio'), 3)} "
                f"| {seconds:.0f} |"
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    print(card(ap.parse_args().checkpoint))


if __name__ == "__main__":
    main()
