"""The TITAN-style baseline: identification, ellipse fit, tracking, trends, forecast."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from conftest import moving_cell_scans
from nowcast.forecasters import get_forecaster
from nowcast.forecasters.titan import TitanForecaster
from nowcast.forecasters.titan_storms import fit_ellipse, identify_storms
from nowcast.forecasters.titan_tracking import (
    TITAN_WEIGHTS,
    Track,
    TrackParams,
    trend_scale,
    weighted_slope,
)
from nowcast.config import load_config
from nowcast.errors import ForecasterError

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


def _times(n: int, step_s: float = 300.0) -> list[datetime]:
    return [T0 + timedelta(seconds=step_s * k) for k in range(n)]


def _cells(
    cells: list[tuple[float, float, float]], size: int = 64, nz: int = 3
) -> np.ndarray:
    """A volume of cone-shaped cells ``(x, y, r35)``: 35 dBZ at radius ``r35``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    col = np.zeros((size, size), dtype=np.float32)
    for cx, cy, r35 in cells:
        r = np.hypot(xx - cx, yy - cy)
        col = np.maximum(col, np.clip(35.0 + 5.0 * (r35 - r), 0.0, 55.0))
    return np.stack([col * (1.0 - 0.1 * i) for i in range(nz)]).astype(np.float32)


def _discs(cells: list[tuple[float, float, float]], size: int = 64) -> np.ndarray:
    """One level of flat 50 dBZ discs ``(x, y, radius)``."""
    yy, xx = np.mgrid[0:size, 0:size]
    col = np.zeros((size, size), dtype=np.float32)
    for cx, cy, r in cells:
        col[(xx - cx) ** 2 + (yy - cy) ** 2 <= r**2] = 50.0
    return col[np.newaxis]


def _csi(forecast: np.ndarray, observed: np.ndarray, threshold: float = 35.0) -> float:
    f = np.nan_to_num(forecast, nan=-np.inf) >= threshold
    o = np.nan_to_num(observed, nan=-np.inf) >= threshold
    hits = np.sum(f & o)
    return float(hits / (hits + np.sum(f & ~o) + np.sum(~f & o)))


# identification and ellipse


def test_two_cells_are_two_storms_with_their_areas() -> None:
    vol = _discs([(15, 15, 5), (45, 40, 7), (50, 10, 2)])
    n_px = [
        int(((np.mgrid[-r : r + 1, -r : r + 1] ** 2).sum(0) <= r * r).sum())
        for r in (5, 7)
    ]
    for dx_km in (1.0, 2.0):
        storms = identify_storms(
            vol, threshold_dbz=35.0, dx_km=dx_km, dz_km=1.0, min_size=30.0
        )
        # the radius-2 cell (13 px) is below 30 km^2 at 1 km, above at 2 km
        assert len(storms) == (2 if dx_km == 1.0 else 3)
        big = sorted(storms, key=lambda s: s.area_km2)[-2:]
        assert [s.area_km2 for s in big] == [n * dx_km**2 for n in n_px]
        assert big[0].x_km == pytest.approx(15 * dx_km)
        assert big[1].y_km == pytest.approx(40 * dx_km)
        assert big[1].volume_km3 == pytest.approx(n_px[1] * dx_km**2 * 1.0)


def test_nan_is_no_echo_and_3d_storms_use_volume() -> None:
    vol = np.zeros((4, 40, 40), dtype=np.float32)
    vol[0:2, 5:15, 5:15] = 50.0  # 200 voxels, low
    vol[2:4, 5:15, 25:35] = 50.0  # 200 voxels, high
    vol[3, 30:33, 30:33] = 50.0  # 9 voxels: too small
    vol[:, 20:25, :] = np.nan
    storms = identify_storms(
        vol, threshold_dbz=35.0, dx_km=1.0, dz_km=0.5, min_size=30.0, use_3d=True
    )
    assert len(storms) == 2
    assert [s.volume_km3 for s in storms] == [100.0, 100.0]
    assert [s.area_km2 for s in storms] == [100.0, 100.0]


@pytest.mark.parametrize("angle_deg", [30.0, -60.0, 90.0])
def test_ellipse_fit_on_a_rotated_ellipse(angle_deg: float) -> None:
    a, b = 20.0, 8.0
    th = math.radians(angle_deg)
    yy, xx = np.mgrid[0:80, 0:80].astype(np.float64)
    u = (xx - 40.3) * math.cos(th) + (yy - 38.7) * math.sin(th)
    v = -(xx - 40.3) * math.sin(th) + (yy - 38.7) * math.cos(th)
    rows, cols = np.nonzero((u / a) ** 2 + (v / b) ** 2 <= 1.0)
    e = fit_ellipse(rows, cols, dx_km=0.5)
    assert e.x_km == pytest.approx(40.3 * 0.5, abs=0.1)  # 0.2 px
    assert e.y_km == pytest.approx(38.7 * 0.5, abs=0.1)
    diff = (e.orientation_deg - angle_deg + 90.0) % 180.0 - 90.0
    assert abs(diff) < 1.0
    assert e.major_km == pytest.approx(a * 0.5, rel=0.03)
    assert e.minor_km == pytest.approx(b * 0.5, rel=0.03)
    assert math.pi * e.major_km * e.minor_km == pytest.approx(rows.size * 0.25)


# trends


def test_weighted_slope_is_exact_on_a_line_and_weights_newest_first() -> None:
    t = np.arange(8) * 300.0
    assert weighted_slope(t, 3.0 + 0.01 * t, TITAN_WEIGHTS) == pytest.approx(0.01)
    v = np.array([0.0, 5.0, 1.0, 9.0, 2.0, 2.0, 7.0, 3.0])
    w_oldest_first = np.array(TITAN_WEIGHTS)[::-1]  # 0.4 ... 1.0 on the last 7
    expected = np.polyfit(t[1:], v[1:], 1, w=np.sqrt(w_oldest_first))[0]
    assert weighted_slope(t, v, TITAN_WEIGHTS) == pytest.approx(expected)
    reversed_ = np.polyfit(t[1:], v[1:], 1, w=np.sqrt(w_oldest_first[::-1]))[0]
    assert not np.isclose(expected, reversed_, rtol=0.1)
    assert weighted_slope(t[:1], v[:1], TITAN_WEIGHTS) == 0.0


def test_trend_is_scaled_by_history_length() -> None:
    assert trend_scale(600.0, 1200.0) == 0.5
    assert trend_scale(3600.0, 1200.0) == 1.0
    storm = identify_storms(
        _discs([(20, 20, 5)]), threshold_dbz=35.0, dx_km=1.0, dz_km=1.0, min_size=0
    )[0]
    track = Track.start(1, 0.0, storm)
    assert track.velocity(TrackParams()) == (0.0, 0.0)  # seen once: no motion
    moved = identify_storms(
        _discs([(23, 20, 5)]), threshold_dbz=35.0, dx_km=1.0, dz_km=1.0, min_size=0
    )[0]
    track.add(300.0, moved)
    vx, vy = track.velocity(TrackParams())
    assert vx == pytest.approx(3.0 / 300.0 * 300.0 / 1200.0)
    assert vy == pytest.approx(0.0)


# tracking


@pytest.mark.parametrize("speed_px", [(1.0, 0.5), (-0.7, 1.2)])
def test_moving_cell_keeps_one_id_and_its_velocity(speed_px: tuple) -> None:
    scans = moving_cell_scans(n=8, size=64, speed_px=speed_px)
    frames = np.stack([s.dbz for s in scans])
    times_s = [300.0 * k for k in range(8)]
    (track,) = TitanForecaster().track(frames, times_s, dx_m=1000.0)
    assert track.track_id == 1 and len(track.times_s) == 8
    true = np.array(speed_px) * 1000.0 / 300.0
    got = np.array(track.velocity(TrackParams())) * 1000.0
    assert np.linalg.norm(got - true) < 0.05 * np.linalg.norm(true)


def test_fast_cell_is_matched_by_cost_and_too_fast_is_not() -> None:
    # 8 px (km) a scan: no footprint overlap, 96 km/h: matched by cost
    frames = np.stack([_discs([(8 + 8 * k, 30, 5)], size=80)[0] for k in range(7)])
    frames = frames[:, np.newaxis]
    times_s = [300.0 * k for k in range(7)]
    (track,) = TitanForecaster().track(frames, times_s, dx_m=1000.0)
    assert len(track.times_s) == 7
    assert track.velocity(TrackParams())[0] * 3600.0 == pytest.approx(96.0)
    # the same at 60 km/h max speed: every scan starts a new storm
    (track,) = TitanForecaster(max_speed_kmh=60.0).track(frames, times_s, 1000.0)
    assert len(track.times_s) == 1 and track.track_id == 7


def test_split_and_merger_keep_histories_without_jumps() -> None:
    offsets = [3, 3, 3, 3, 3, 7]  # two discs overlap (one storm), then split
    frames = np.stack([_discs([(30 - d, 30, 5), (30 + d, 30, 5)]) for d in offsets])
    times_s = [300.0 * k for k in range(len(offsets))]
    tracks = TitanForecaster().track(frames, times_s, dx_m=1000.0)
    assert len(tracks) == 2
    assert sorted(t.track_id for t in tracks)[0] == 1
    child = next(t for t in tracks if t.track_id != 1)
    assert child.parent_id == 1
    for t in tracks:
        assert len(t.times_s) == 6  # the child inherits the parent's history
        assert np.hypot(*t.velocity(TrackParams())) < 1e-9  # no spurious jump
    merged = TitanForecaster().track(frames[::-1], times_s, dx_m=1000.0)
    assert len(merged) == 1 and len(merged[0].times_s) == 6
    assert np.hypot(*merged[0].velocity(TrackParams())) < 1e-9


# forecast


def test_moving_cell_is_forecast_where_it_goes() -> None:
    scans = moving_cell_scans(n=11, nz=3, size=64)
    frames = np.stack([s.dbz for s in scans[:8]])
    result = TitanForecaster().forecast(
        frames, [s.time for s in scans[:8]], 3, dx_m=1000.0
    )
    truth = scans[10].dbz
    assert _csi(result.dbz[2], truth) > 0.9
    assert _csi(result.dbz[2], truth) > _csi(frames[-1], truth) + 0.2


def test_growing_cell_follows_the_area_trend_and_a_decaying_one_vanishes() -> None:
    dx = 1000.0
    areas = [60.0 + 10.0 * k for k in range(8)]  # km^2 at 35 dBZ
    frames = np.stack(
        [_cells([(30.3, 29.8, math.sqrt(a / math.pi))]) for a in areas]
    )
    result = TitanForecaster().forecast(frames, _times(8), 3, dx_m=dx)
    (storm,) = result.info["storms"]
    assert storm["area_rate_km2_s"] == pytest.approx(10.0 / 300.0, rel=0.1)
    for k in range(3):
        area = np.sum(result.dbz[k].max(axis=0) >= 35.0)
        expected = storm["area_km2"] + storm["area_rate_km2_s"] * 300.0 * (k + 1)
        assert area == pytest.approx(expected, rel=0.05)
    shrinking = [150.0 - 15.0 * k for k in range(8)]  # 45 km^2 now, 0 at lead 3
    frames = np.stack(
        [_cells([(30.3, 29.8, math.sqrt(a / math.pi))]) for a in shrinking]
    )
    result = TitanForecaster().forecast(frames, _times(8), 3, dx_m=dx)
    assert np.sum(result.dbz[0].max(axis=0) >= 35.0) > 0
    assert np.sum(result.dbz[2].max(axis=0) >= 35.0) == 0


def test_output_shape_dtype_floor_and_motion() -> None:
    scans = moving_cell_scans(n=6, nz=4, size=48)
    frames = np.stack([s.dbz for s in scans])
    frames[frames < 1.0] = -10.0  # floor -10 dBZ
    result = TitanForecaster().forecast(
        frames, [s.time for s in scans], 4, dx_m=1000.0
    )
    assert result.method == "titan"
    assert result.dbz.shape == (4, 4, 48, 48) and result.dbz.dtype == np.float32
    assert np.isfinite(result.dbz).all()
    assert result.dbz.min() >= -10.0
    assert result.motion is not None and result.motion.shape == (4, 2, 48, 48)
    storm = result.info["storms"][0]
    moving = result.motion[3, 0] != 0
    assert moving.any()
    assert np.allclose(result.motion[3, 0][moving], storm["vx_ms"])
    assert np.allclose(result.motion[3, 1][moving], storm["vy_ms"])
    assert storm["vx_ms"] > 0 and storm["vy_ms"] > 0
    assert result.motion[3, 0, 0, 0] == 0.0


def test_no_coverage_stays_nan_and_storms_still_move() -> None:
    scans = moving_cell_scans(n=11, nz=3, size=64)
    frames = np.stack([s.dbz for s in scans[:8]])
    frames[:, :, 50:, :] = np.nan  # no coverage in the south
    frames[3, :, :, 40:] = np.nan  # one scan half missing
    result = TitanForecaster().forecast(frames, _times(8), 3, dx_m=1000.0)
    assert np.isnan(result.dbz[:, :, 50:, :]).all()
    assert np.isfinite(result.dbz[:, :, :50, :]).all()
    assert _csi(result.dbz[2], scans[10].dbz) > 0.9


def test_all_nan_input_gives_nan() -> None:
    frames = np.full((3, 2, 16, 16), np.nan, dtype=np.float32)
    result = TitanForecaster().forecast(frames, _times(3), 2, dx_m=1000.0)
    assert result.dbz.shape == (2, 2, 16, 16) and np.isnan(result.dbz).all()


def test_registry_and_settings() -> None:
    assert isinstance(get_forecaster("titan"), TitanForecaster)
    settings = load_config(None, environ={})
    f = get_forecaster("titan", settings, use_3d=True, dz_m=500.0)
    assert f.use_3d and f.dz_m == 500.0
    assert f.params.weights == tuple(settings.baselines.titan.history_weights)
    with pytest.raises(ForecasterError, match="history_weights"):
        TitanForecaster(history_weights=[])
    with pytest.raises(ForecasterError, match="increasing"):
        TitanForecaster().forecast(
            np.zeros((2, 1, 8, 8), np.float32), [T0, T0], 1, dx_m=1000.0
        )
