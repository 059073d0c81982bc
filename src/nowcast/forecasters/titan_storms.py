"""TITAN storm identification and the ellipse fit of a storm's projected area.

Contract
--------
:func:`identify_storms` takes one volume ``(z, y, x)`` dBZ (NaN = no coverage,
taken as no echo) and returns the storms in it: connected regions
``>= threshold_dbz`` larger than a minimum size.

- On the column maximum (default): 2D regions of the column-maximum field; the
  size test is the projected area in km^2. The storm's volume is the voxels
  ``>= threshold_dbz`` in the columns of its footprint.
- In 3D (``use_3d``): connected voxels; the size test is the volume in km^3. The
  footprint is the 3D region's projection on the ground (footprints of storms at
  different heights may overlap).

Connectivity is face-only (scipy's default structure: 4 neighbours in 2D, 6 in
3D), close to TITAN's clumping of runs that share columns. Voxel volume is
``dx_km^2 * dz_km``; the interface gives only ``dx``, so the level spacing is a
parameter (``[baselines.titan] dz_m``).

Positions are in km along the grid axes, from the centre of pixel ``(0, 0)``:
``x_km = column * dx_km``, ``y_km = row * dx_km``. Each storm's projected area is
fitted with an ellipse by principal components (:func:`fit_ellipse`): centred on
the footprint's centroid (the position TITAN tracks), oriented along the major
eigenvector of the pixel covariance, with radii in the ratio of the square roots
of the eigenvalues and scaled so the ellipse has the footprint's area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in km: centre, equal-area radii, orientation.

    ``orientation_deg`` is the angle of the major axis from the +x axis towards +y
    (grid axes), in ``(-90, 90]``.
    """

    x_km: float
    y_km: float
    major_km: float
    minor_km: float
    orientation_deg: float


@dataclass
class Storm:
    """One storm at one scan.

    ``box`` is the bounding box ``(row slice, column slice)`` of the footprint and
    ``mask`` the footprint (bool) inside that box.
    """

    box: tuple[slice, slice]
    mask: np.ndarray
    area_km2: float
    volume_km3: float
    ellipse: Ellipse

    @property
    def x_km(self) -> float:
        return self.ellipse.x_km

    @property
    def y_km(self) -> float:
        return self.ellipse.y_km

    @property
    def n_pixels(self) -> int:
        return int(self.mask.sum())


def fit_ellipse(rows: np.ndarray, cols: np.ndarray, dx_km: float) -> Ellipse:
    """Fit the equal-area principal-component ellipse to a set of pixels.

    Parameters
    ----------
    rows, cols
        Pixel indices of the region (``y``, ``x``).
    dx_km
        Pixel size.

    Returns
    -------
    Ellipse
        Centre at the pixels' centroid; radii with ``pi * major * minor`` equal to
        the region's area and ``major / minor`` the ratio of the standard
        deviations along the principal axes. Each pixel counts as a unit square
        (its own variance ``1/12`` is added), so a single pixel gives a circle.
    """
    x = cols.astype(np.float64) * dx_km
    y = rows.astype(np.float64) * dx_km
    area = x.size * dx_km**2
    cx, cy = float(x.mean()), float(y.mean())
    cov = np.cov(np.stack([x - cx, y - cy]), bias=True).reshape(2, 2)
    cov += np.eye(2) * dx_km**2 / 12.0
    evals, evecs = np.linalg.eigh(cov)  # ascending
    minor_var, major_var = max(evals[0], 1e-12), max(evals[1], 1e-12)
    ratio = math.sqrt(major_var / minor_var)
    major = math.sqrt(area / math.pi * ratio)
    minor = area / (math.pi * major)
    vx, vy = evecs[0, 1], evecs[1, 1]
    angle = math.degrees(math.atan2(vy, vx))
    if angle <= -90.0:
        angle += 180.0
    elif angle > 90.0:
        angle -= 180.0
    return Ellipse(cx, cy, major, minor, angle)


def identify_storms(
    volume: np.ndarray,
    *,
    threshold_dbz: float,
    dx_km: float,
    dz_km: float,
    min_size: float,
    use_3d: bool = False,
) -> list[Storm]:
    """Find the storms of one volume.

    Parameters
    ----------
    volume
        ``(z, y, x)`` dBZ; NaN counts as no echo.
    threshold_dbz
        Storms are connected regions ``>= threshold_dbz``.
    dx_km, dz_km
        Horizontal pixel size and level spacing.
    min_size
        Smallest storm kept: projected area in km^2 (column maximum) or volume in
        km^3 (``use_3d``).
    use_3d
        Connected voxels in 3D instead of regions of the column maximum.

    Returns
    -------
    list of Storm
        In label order (raster order of their first pixel).
    """
    echo = np.nan_to_num(volume, nan=-np.inf) >= threshold_dbz
    voxel_km3 = dx_km**2 * dz_km
    storms: list[Storm] = []
    if use_3d:
        labels, _ = ndimage.label(echo)
        for i, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            region = labels[sl] == i
            volume_km3 = float(region.sum()) * voxel_km3
            if volume_km3 < min_size:
                continue
            storms.append(_make_storm(region.any(axis=0), sl[1:], volume_km3, dx_km))
        return storms
    column = echo.any(axis=0)
    labels, _ = ndimage.label(column)
    counts = echo.sum(axis=0)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        mask = labels[sl] == i
        if mask.sum() * dx_km**2 < min_size:
            continue
        volume_km3 = float(counts[sl][mask].sum()) * voxel_km3
        storms.append(_make_storm(mask, sl, volume_km3, dx_km))
    return storms


def _make_storm(
    mask: np.ndarray, box: tuple[slice, ...], volume_km3: float, dx_km: float
) -> Storm:
    rows, cols = np.nonzero(mask)
    rows = rows + box[0].start
    cols = cols + box[1].start
    return Storm(
        box=(box[0], box[1]),
        mask=mask,
        area_km2=float(rows.size) * dx_km**2,
        volume_km3=volume_km3,
        ellipse=fit_ellipse(rows, cols, dx_km),
    )


def footprint_overlap(a: Storm, b: Storm, shift_px: tuple[int, int] = (0, 0)) -> int:
    """Pixels shared by ``b`` and ``a``'s footprint moved ``shift_px`` (rows, cols)."""
    dy, dx = shift_px
    ay0, ay1 = a.box[0].start + dy, a.box[0].stop + dy
    ax0, ax1 = a.box[1].start + dx, a.box[1].stop + dx
    by0, by1 = b.box[0].start, b.box[0].stop
    bx0, bx1 = b.box[1].start, b.box[1].stop
    y0, y1 = max(ay0, by0), min(ay1, by1)
    x0, x1 = max(ax0, bx0), min(ax1, bx1)
    if y0 >= y1 or x0 >= x1:
        return 0
    ma = a.mask[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0]
    mb = b.mask[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
    return int(np.count_nonzero(ma & mb))
