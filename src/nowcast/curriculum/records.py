"""What the trainer writes to the metrics store (``paths.store``) each epoch.

Contract
--------
:func:`record_epoch_rows` writes one ``train`` and one ``val`` row
(:meth:`nowcast.store.MetricsStore.record_epoch`):

- ``train``: the total loss, its terms (``huber``, ``high``, ``ssim``, ``event``, ``quantile``,
  ``motion``), the epoch's learning rate and wall time;
- ``val``: the same, plus CSI at 35 dBZ of the model by lead in seconds
  (``csi35``), the area ratio at the last lead, and the mean CSI35 over leads of
  the two baselines as extra terms ``csi35_persistence`` and
  ``csi35_extrapolation`` (so the monitor can chart them beside the losses), and
  the mean CSI at 20 dBZ of the model and the extrapolation (``csi20``,
  ``csi20_extrapolation``) when the validation has them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["record_epoch_rows"]


def record_epoch_rows(
    store: Any,
    run_id: int,
    phase: int,
    epoch: int,
    lr: float,
    train: dict[str, float],
    val: dict[str, Any],
    train_s: float,
    val_s: float,
    interval_s: float,
) -> None:
    """Write the epoch's two rows (see the module contract)."""
    store.record_epoch(
        run_id,
        phase,
        epoch,
        "train",
        train["total"],
        terms={k: v for k, v in train.items() if k != "total"},
        lr=lr,
        seconds=train_s,
    )
    leads = {int(round((k + 1) * interval_s)): v for k, v in enumerate(val["csi35"])}
    terms = dict(val["terms"])
    terms["csi35_persistence"] = val["csi35_persistence_mean"]
    terms["csi35_extrapolation"] = val["csi35_extrapolation_mean"]
    for key in ("csi20", "csi20_extrapolation"):
        if f"{key}_mean" in val:
            terms[key] = val[f"{key}_mean"]
    store.record_epoch(
        run_id,
        phase,
        epoch,
        "val",
        val["loss"],
        terms=terms,
        lr=lr,
        csi35=leads,
        area_ratio=val["area_ratio"],
        seconds=val_s,
    )
