"""The training losses: Huber + weighted high-reflectivity term + 3D SSIM.

Contract
--------
Forecast ``pred`` and observation ``target`` are tensors of the same shape
``(..., Z, Y, X)`` (usually ``(B, T, Z, Y, X)``) in unit range (0 = ``dbz_min``,
1 = ``dbz_max``). ``err = pred - target``; ``N`` is the number of voxels (with a
``mask``: the number of valid voxels, and the sums run over valid voxels only).

:class:`CombinedLoss` returns ``{"total", "huber", "high", "ssim", "event",
"quantile"}``
where::

    huber = (1 / N) * sum huber_delta(err)
            huber_delta(e) = 0.5 e^2            if |e| <= delta
                           = delta (|e| - delta / 2)  otherwise
    high  = (1 / N) * sum [target > high_threshold] * |err|
    ssim  = ssim3d(pred, target)        (mean SSIM index, 1 = identical)
    event = event_csi_term(pred, target, event_thresholds, event_width)
    quantile = quantile_term(pred, target, quantile_tau, quantile_echo)
    total = huber + high_penalty_weight * high + ssim_weight * (1 - ssim)
            + event_weight * event + quantile_weight * quantile

``event`` is the loss aimed at the event thresholds, beside the strategy's three
and off by default (``event_weight = 0``: still computed, so that it is
reported): :func:`event_csi_term` is 1 - the soft CSI of the composite (column
maximum), the forecast's events ``sigmoid((pred - thr) / width)`` against the
observed ``target >= thr``, hits, forecast and observed events summed over the
batch and the grid per lead, the CSI averaged over the leads and the
thresholds, as the verification scores it. :func:`soft_csi` is that CSI for any
units and any dimensions summed (the smoothing head's loss uses it in dBZ).

``quantile`` is the pinball loss of the forecast as the ``tau``-quantile of
what will be observed, beside the strategy's three and off by default
(``quantile_weight = 0``: still computed and reported):
:func:`quantile_term` is ``(1 / N) sum w * max(tau_k e, (tau_k - 1) e)`` with
``e = target - pred`` (so ``tau > 0.5`` costs an under-forecast more than an
over-forecast), ``tau_k`` the lead's quantile (one number for every lead, or one
a lead), ``w`` 1 where the target or the forecast reaches ``echo`` (the empty
sky, most of every grid, adds nothing), ``1 + core_weight`` where either reaches
``core`` (the cores whose life or death decides the CSI at the event threshold;
``core_weight = 0`` by default) and ``N`` every valid voxel, times 100 (a mean
over mostly empty voxels is small). Its minimum is the conditional
``tau``-quantile, which exceeds a threshold exactly where the probability of
the event is at least ``1 - tau``, at every threshold at once: a deterministic
forecast that marks an event when its chance is ``1 - tau``. The CSI is best
marking events down to a chance of about ``CSI / (1 + CSI)``, so ``tau`` rises
with lead as the attainable CSI falls (about 0.6 at t+5, 0.77 at t+35 for the
CSI at 35 dBZ the priors reach). Its gradient is dense and the same size for
every error, so batches of a few windows give a steady signal, where the soft
CSI (``event``) and cross-entropies of events let a forecast hedge at the
threshold.

``high`` is averaged over *all* voxels (not over the high ones), so a voxel whose
target exceeds the threshold costs ``high_penalty_weight * |err|`` on top of its
Huber cost, and a batch without strong echo adds nothing. The threshold is in
unit range: 40 dBZ with ``dbz_min=0, dbz_max=70`` is ``40 / 70``.

:func:`ssim3d` is the SSIM of Wang et al. (2004) extended to volumes: a separable
Gaussian window (``sigma = 1.5``) over (level, y, x) with width
``min(11, Y, X)`` horizontally and depth ``min(7, Z)`` (each made odd by dropping
one), "valid" positions only, ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with data
range ``L = 1``; the map is averaged over positions and over the leading
dimensions. It works for ``Z = 1`` (a 2D SSIM per level) and is always computed in
float32, also under autocast.

:func:`motion_loss` is the mean endpoint error between predicted and true motion
(for pretraining on simulated storms whose motion is known).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "CombinedLoss",
    "event_csi_term",
    "high_penalty_term",
    "huber_term",
    "motion_loss",
    "quantile_term",
    "soft_csi",
    "ssim3d",
]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    m = mask.to(values.dtype).expand_as(values)
    return (values * m).sum() / m.sum().clamp_min(1.0)


def huber_term(
    pred: torch.Tensor,
    target: torch.Tensor,
    delta: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean Huber loss of ``pred - target`` (float32); see the module contract."""
    values = F.huber_loss(pred.float(), target.float(), reduction="none", delta=delta)
    return _masked_mean(values, mask)


def high_penalty_term(
    pred: torch.Tensor,
    target: torch.Tensor,
    threshold: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(1/N) sum [target > threshold] |pred - target|`` over all (valid) voxels."""
    target = target.float()
    high = (target > threshold).float()
    return _masked_mean(high * (pred.float() - target).abs(), mask)


def _gauss(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _odd(n: int) -> int:
    return n if n % 2 else n - 1


def _blur(x: torch.Tensor, gz: torch.Tensor, gy: torch.Tensor, gx: torch.Tensor):
    x = F.conv3d(x, gz.view(1, 1, -1, 1, 1))
    x = F.conv3d(x, gy.view(1, 1, 1, -1, 1))
    return F.conv3d(x, gx.view(1, 1, 1, 1, -1))


def ssim3d(
    pred: torch.Tensor,
    target: torch.Tensor,
    window_size: int = 11,
    window_depth: int = 7,
    sigma: float = 1.5,
    data_range: float = 1.0,
) -> torch.Tensor:
    """Mean 3D SSIM over (level, y, x) of two ``(..., Z, Y, X)`` tensors.

    Parameters
    ----------
    pred, target
        Same shape, at least 3 dimensions; leading dimensions are volumes.
    window_size, window_depth
        Largest horizontal width and depth of the Gaussian window; the window used
        is ``min(window_size, Y, X)`` by ``min(window_depth, Z)``, made odd.
    sigma
        Standard deviation of the Gaussian, in voxels (every axis).
    data_range
        ``L`` in ``C1 = (0.01 L)^2`` and ``C2 = (0.03 L)^2``.

    Returns
    -------
    torch.Tensor
        A float32 scalar; 1 for identical inputs.
    """
    if pred.shape != target.shape or pred.ndim < 3:
        raise ValueError(
            f"ssim3d needs two tensors of one shape (..., Z, Y, X), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    nz, ny, nx = pred.shape[-3:]
    wz = _odd(min(window_depth, nz))
    wxy = _odd(min(window_size, ny, nx))
    device = pred.device
    with torch.autocast(device_type=device.type, enabled=False):
        x = pred.float().reshape(-1, 1, nz, ny, nx)
        y = target.float().reshape(-1, 1, nz, ny, nx)
        gz = _gauss(wz, sigma, device)
        gxy = _gauss(wxy, sigma, device)
        c1 = (0.01 * data_range) ** 2
        c2 = (0.03 * data_range) ** 2
        mu_x = _blur(x, gz, gxy, gxy)
        mu_y = _blur(y, gz, gxy, gxy)
        var_x = _blur(x * x, gz, gxy, gxy) - mu_x**2
        var_y = _blur(y * y, gz, gxy, gxy) - mu_y**2
        cov = _blur(x * y, gz, gxy, gxy) - mu_x * mu_y
        num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        return (num / den).mean()


def soft_csi(
    forecast: torch.Tensor,
    observed: torch.Tensor,
    threshold: float,
    width: float,
    valid: torch.Tensor | None = None,
    dims: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Soft CSI of ``forecast`` against ``observed >= threshold`` (float32).

    Forecast events are ``sigmoid((forecast - threshold) / width)`` (the same
    units as ``threshold`` and ``width``); hits, forecast and observed events are
    summed over ``dims`` (all of them when ``None``) where ``valid``.
    """
    p = torch.sigmoid((forecast.float() - threshold) / width)
    o = (observed.float() >= threshold).float()
    if valid is not None:
        v = valid.to(torch.float32).expand_as(p)
        p, o = p * v, o * v
    if dims is None:
        hits, fc, obs = (p * o).sum(), p.sum(), o.sum()
    else:
        hits, fc, obs = (p * o).sum(dims), p.sum(dims), o.sum(dims)
    return hits / (fc + obs - hits + 1e-6)


def event_csi_term(
    pred: torch.Tensor,
    target: torch.Tensor,
    thresholds: tuple[float, ...],
    width: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """1 - mean soft CSI of the composite over leads and ``thresholds``.

    ``pred``, ``target`` ``(B, T, Z, Y, X)`` (``mask`` broadcastable), thresholds
    and ``width`` in the same units (unit range in training); counts are summed
    over the batch and the grid per lead (:func:`soft_csi`). Without thresholds,
    0.
    """
    if not thresholds:
        return pred.new_zeros((), dtype=torch.float32)
    f = pred.float().amax(dim=2)
    o = target.float().amax(dim=2)
    valid = None if mask is None else mask.expand_as(target).amax(dim=2) > 0
    csis = [soft_csi(f, o, thr, width, valid, dims=(0, 2, 3)) for thr in thresholds]
    return 1.0 - torch.stack(csis).mean()


def quantile_term(
    pred: torch.Tensor,
    target: torch.Tensor,
    tau: float | tuple[float, ...],
    echo: float,
    mask: torch.Tensor | None = None,
    core: float = 30.0 / 70.0,
    core_weight: float = 0.0,
) -> torch.Tensor:
    """The pinball loss of ``pred`` as the ``tau``-quantile (module contract).

    ``pred``, ``target`` ``(B, T, Z, Y, X)`` in unit range, ``tau`` one quantile
    or one a lead (``T`` of them), ``echo`` and ``core`` in unit range; ``mask``
    (valid voxels) broadcastable to ``target``. float32.
    """
    pred, target = pred.float(), target.float()
    if isinstance(tau, (tuple, list)):
        if len(tau) != target.shape[1]:
            raise ValueError(
                f"quantile tau has {len(tau)} leads, the forecast {target.shape[1]}"
            )
        shape = (1, len(tau)) + (1,) * (target.ndim - 2)
        tau = torch.tensor(tau, dtype=torch.float32, device=target.device).view(shape)
    err = target - pred
    loss = torch.maximum(tau * err, (tau - 1.0) * err)
    weight = ((target >= echo) | (pred.detach() >= echo)).float()
    if core_weight > 0:
        cores = (target >= core) | (pred.detach() >= core)
        weight = weight * (1.0 + core_weight * cores.float())
    if mask is None:
        return 100.0 * (loss * weight).mean()
    m = mask.to(torch.float32).expand_as(target)
    return 100.0 * (loss * weight * m).sum() / m.sum().clamp_min(1.0)


def motion_loss(
    pred_motion: torch.Tensor,
    true_motion: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean endpoint error ``|| pred - true ||_2`` in px/step.

    Parameters
    ----------
    pred_motion
        ``(..., 2, Y, X)``, e.g. the network's ``(B, T, 2, Y, X)``.
    true_motion
        Broadcastable to ``pred_motion`` (e.g. ``(B, 1, 2, Y, X)`` for a motion that
        holds over the leads).
    mask
        Optional, broadcastable to ``(..., Y, X)``: where the motion counts (e.g.
        where there is echo); the mean then runs over those points.
    """
    diff = pred_motion.float() - true_motion.float()
    epe = torch.sqrt((diff**2).sum(dim=-3) + 1e-12)
    return _masked_mean(epe, mask)


@dataclass
class CombinedLoss:
    """``huber + high_penalty_weight * high + ssim_weight * (1 - ssim)``.

    See the module contract for each term. The weights are plain attributes, so a
    phase change may set new ones on the same object.

    Parameters
    ----------
    high_penalty_weight
        Weight of the high-reflectivity term (100, 50, 25 in phases 1-3).
    ssim_weight
        Weight of ``1 - SSIM`` (0.1, 20, 30 in phases 1-3).
    high_threshold
        The threshold in unit range (40 dBZ -> ``40 / 70`` by default scaling).
    huber_delta
        The Huber transition, in unit range.
    event_weight, event_thresholds, event_width
        The event-threshold term's weight (0: reported, not trained on), its
        thresholds and the soft events' width, in unit range.
    quantile_weight, quantile_tau, quantile_echo
        The quantile term's weight (0: reported, not trained on), its quantile
        (one, or one a lead) and where it counts (unit range).
    quantile_core, quantile_core_weight
        Where the quantile term weighs ``1 + quantile_core_weight`` (unit range;
        weight 0: everywhere alike).
    """

    high_penalty_weight: float
    ssim_weight: float
    high_threshold: float
    huber_delta: float = 1.0
    event_weight: float = 0.0
    event_thresholds: tuple[float, ...] = ()
    event_width: float = 2.0 / 70.0
    quantile_weight: float = 0.0
    quantile_tau: float | tuple[float, ...] = 0.6
    quantile_echo: float = 5.0 / 70.0
    quantile_core: float = 30.0 / 70.0
    quantile_core_weight: float = 0.0

    def __call__(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Every term and the total (float32 scalars, with gradients).

        ``mask`` (valid voxels, broadcastable to ``target``) restricts the Huber and
        high terms to covered voxels; SSIM then compares ``pred * mask`` with
        ``target * mask``.
        """
        if pred.shape != target.shape:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ"
            )
        huber = huber_term(pred, target, self.huber_delta, mask)
        high = high_penalty_term(pred, target, self.high_threshold, mask)
        if mask is None:
            ssim = ssim3d(pred, target)
        else:
            m = mask.to(torch.float32).expand_as(target)
            ssim = ssim3d(pred.float() * m, target.float() * m)
        event = event_csi_term(
            pred, target, tuple(self.event_thresholds), self.event_width, mask
        )
        tau = self.quantile_tau
        if isinstance(tau, (tuple, list)) and len(tau) != target.shape[1]:
            tau = tuple(tau[min(k, len(tau) - 1)] for k in range(target.shape[1]))
        quantile = quantile_term(
            pred,
            target,
            tau,
            self.quantile_echo,
            mask,
            core=self.quantile_core,
            core_weight=self.quantile_core_weight,
        )
        total = huber + self.high_penalty_weight * high
        total = total + self.ssim_weight * (1.0 - ssim)
        if self.event_weight > 0:
            total = total + self.event_weight * event
        if self.quantile_weight > 0:
            total = total + self.quantile_weight * quantile
        return {
            "total": total,
            "huber": huber,
            "high": high,
            "ssim": ssim,
            "event": event,
            "quantile": quantile,
        }
