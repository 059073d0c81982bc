"""The synthetic 3D radar: each regime's signature, measured on the frames it makes."""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import ndimage

from nowcast.config import SyntheticConfig, load_config
from nowcast.errors import ConfigError
from nowcast.radar import Scan
from nowcast.synthetic import (
    DEFAULT_START,
    REGIMES,
    Simulator,
    SyntheticSequence,
    generate_sequence,
)

ALL = (*REGIMES, "mixed")
DT = 300.0


# --- measurements ------------------------------------------------------------------


def displacement(a: np.ndarray, b: np.ndarray, max_shift: int = 8):
    """``(dx, dy)`` pixels that best carry image ``a`` onto ``b`` (least squares).

    Exhaustive integer search over the interior, refined by a parabola; unlike a
    circular FFT correlation it is not biased by echoes leaving the domain.
    """
    m = max_shift + 1
    core = a[m:-m, m:-m]
    n = 2 * max_shift + 1
    cost = np.empty((n, n))
    for j, dy in enumerate(range(-max_shift, max_shift + 1)):
        for i, dx in enumerate(range(-max_shift, max_shift + 1)):
            part = b[m + dy : b.shape[0] - m + dy, m + dx : b.shape[1] - m + dx]
            cost[j, i] = np.mean((part - core) ** 2)
    j, i = np.unravel_index(np.argmin(cost), cost.shape)
    j, i = int(np.clip(j, 1, n - 2)), int(np.clip(i, 1, n - 2))

    def vertex(cm, c0, cp):
        d = cm - 2 * c0 + cp
        return 0.0 if d <= 0 else 0.5 * (cm - cp) / d

    dy = j - max_shift + vertex(cost[j - 1, i], cost[j, i], cost[j + 1, i])
    dx = i - max_shift + vertex(cost[j, i - 1], cost[j, i], cost[j, i + 1])
    return dx, dy


def track_peaks(seq: SyntheticSequence, threshold=40.0, radius_px=3.0):
    """Cells as smoothed column-maximum peaks >= ``threshold``, tracked frame to frame.

    A peak continues a track when it lies within ``radius_px`` of where the motion
    field carries the track's last peak. Returns ``(first, last)`` frame indices.
    """
    dx_km = seq.grid.dx_m / 1000.0
    dt = (seq.times[1] - seq.times[0]).total_seconds()
    tracks, prev = [], []
    for k, frame in enumerate(seq.frames):
        cm = ndimage.gaussian_filter(np.nan_to_num(frame.max(0)), 1.5)
        is_peak = (ndimage.maximum_filter(cm, size=5) == cm) & (cm >= threshold)
        current, used = [], set()
        for j, i in np.argwhere(is_peak):
            best, dist = None, radius_px
            for t in prev:
                pj, pi = t[2]
                u, v = seq.motion[k - 1][:, pj, pi]
                ej = pj + v * dt / 1000.0 / dx_km
                ei = pi + u * dt / 1000.0 / dx_km
                d = np.hypot(j - ej, i - ei)
                if d <= dist and id(t) not in used:
                    best, dist = t, d
            if best is None:
                best = [k, k, (j, i)]
                tracks.append(best)
            else:
                used.add(id(best))
                best[1], best[2] = k, (j, i)
            current.append(best)
        prev = current
    return [(a, b) for a, b, _ in tracks]


def core_aloft_centroids(seq: SyntheticSequence, dbz=50.0, above_km=5.0):
    """Per frame: max dBZ at or above ``above_km`` and the centroid (km) of >= dbz."""
    aloft = seq.grid.z_m >= above_km * 1000.0
    x_km = seq.grid.x_m / 1000.0
    peaks, centres = [], []
    for frame in seq.frames:
        upper = frame[aloft]
        peaks.append(float(upper.max()))
        j, i = np.nonzero((upper >= dbz).any(axis=0))
        centres.append((x_km[i].mean(), x_km[j].mean()) if i.size else (np.nan, np.nan))
    return np.array(peaks), np.array(centres)


# --- the API -----------------------------------------------------------------------


def test_regimes_and_unknown_name():
    assert REGIMES == ("advection", "multicell", "supercell")
    with pytest.raises(ValueError) as info:
        generate_sequence("hurricane", 2, seed=0, size=32, levels=2)
    for name in ALL:
        assert name in str(info.value)


@pytest.mark.parametrize("bad", [
    dict(size=8), dict(levels=0), dict(n_scans=0), dict(seed=-1), dict(interval_s=0),
])
def test_bad_arguments_are_refused(bad):
    kwargs = dict(n_scans=2, seed=0, size=32, levels=2) | bad
    with pytest.raises(ValueError):
        generate_sequence("advection", **kwargs)


@pytest.mark.parametrize("regime", ALL)
def test_sequence_contract(regime):
    start = datetime(2025, 7, 1, 15, 0, tzinfo=timezone.utc)
    seq = generate_sequence(
        regime, 3, seed=4, size=48, levels=5, interval_s=DT, start=start
    )
    assert seq.regime == regime
    assert seq.frames.dtype == np.float32 and seq.frames.shape == (3, 5, 48, 48)
    assert seq.motion.dtype == np.float32 and seq.motion.shape == (3, 2, 48, 48)
    assert np.isfinite(seq.frames).all() and seq.frames.min() == 0.0
    assert seq.frames.max() > 30.0
    assert seq.times == [start + timedelta(seconds=DT * k) for k in range(3)]
    assert all(t.utcoffset() == timedelta(0) for t in seq.times)  # aware, UTC
    grid = seq.grid
    assert grid.shape == (5, 48, 48)
    assert grid.mapping_attrs["grid_mapping_name"] == "azimuthal_equidistant"
    assert grid.origin is not None and grid.dx_m == pytest.approx(1000.0)
    assert grid.x_m[0] == -grid.x_m[-1]  # centred on the radar
    assert grid.z_m[[0, -1]] == pytest.approx([500.0, 17000.0])
    scans = seq.scans()
    assert len(scans) == 3 and all(isinstance(s, Scan) for s in scans)
    assert scans[2].time == seq.times[2]
    np.testing.assert_array_equal(scans[1].dbz, seq.frames[1])
    assert {"wind_ms", "shear_ms_per_km", "freezing_level_km"} <= set(seq.meta)


def test_default_start_and_naive_start_is_utc():
    seq = generate_sequence("advection", 1, seed=0, size=16, levels=1)
    assert seq.times[0] == DEFAULT_START
    assert DEFAULT_START == datetime(2024, 6, 1, 12, tzinfo=timezone.utc)
    naive = generate_sequence("advection", 1, seed=0, size=16, levels=1,
                              start=datetime(2024, 1, 1))
    assert naive.times[0] == datetime(2024, 1, 1, tzinfo=timezone.utc)
    np.testing.assert_array_equal(naive.frames, seq.frames)  # frames ignore the start


@pytest.mark.parametrize(
    "size,levels,dx_km", [(16, 1, 1.0), (33, 2, 0.5), (40, 3, 8.0)]
)
def test_any_size_and_levels(size, levels, dx_km):
    for regime in ALL:
        seq = generate_sequence(regime, 2, seed=1, size=size, levels=levels,
                                dx_km=dx_km)
        assert seq.frames.shape == (2, levels, size, size)
        assert np.isfinite(seq.frames).all()


@pytest.mark.parametrize("regime", ALL)
def test_same_seed_same_bytes_other_seed_differs(regime):
    kw = dict(size=48, levels=4)
    a = generate_sequence(regime, 3, seed=11, **kw)
    b = generate_sequence(regime, 3, seed=11, **kw)
    c = generate_sequence(regime, 3, seed=12, **kw)
    assert a.frames.tobytes() == b.frames.tobytes()
    assert a.motion.tobytes() == b.motion.tobytes()
    assert a.frames.tobytes() != c.frames.tobytes()
    assert a.meta["wind_ms"] != c.meta["wind_ms"]


def test_simulator_renders_the_same_frames_one_at_a_time():
    seq = generate_sequence("mixed", 3, seed=2, size=48, levels=4)
    sim = Simulator("mixed", 3, seed=2, size=48, levels=4)
    for k in range(3):
        volume, motion = sim.render(k)
        np.testing.assert_array_equal(volume, seq.frames[k])
        np.testing.assert_array_equal(motion, seq.motion[k])
        assert sim.scan(k).time == seq.times[k]


def test_motion_and_growth_vary_between_seeds():
    winds = {
        generate_sequence("advection", 1, seed=s, size=16, levels=1).meta["wind_ms"]
        for s in range(5)
    }
    assert len(winds) == 5
    speeds = [np.hypot(*w) for w in winds]
    assert all(5.0 <= v <= 20.0 for v in speeds)


# --- advection -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_advection_echoes_move_with_the_set_wind(seed):
    """Frame-to-frame displacement of the column maximum = wind x interval."""
    seq = generate_sequence("advection", 5, seed=seed, size=128, levels=6)
    wind = np.array(seq.meta["wind_ms"])
    expected_px = wind * DT / 1000.0  # dx = 1 km
    for k in range(4):
        got = displacement(seq.frames[k].max(0), seq.frames[k + 1].max(0))
        np.testing.assert_allclose(got, expected_px, atol=0.35)
    # the motion field returned is that wind, everywhere
    np.testing.assert_allclose(seq.motion[:, 0], wind[0], atol=1e-4)
    np.testing.assert_allclose(seq.motion[:, 1], wind[1], atol=1e-4)


def test_advection_wind_from_config_and_cell_centroids_follow_it():
    """Long-lived cells: centroids of >= 35 dBZ move wind x interval each scan."""
    params = SyntheticConfig(
        wind_speed_ms=[15.0, 15.0], shear_ms_per_km=[0.0, 0.0], noise_dbz=0.0,
        stratiform_cover=[0.01, 0.01], embedded_cells_per_10k_km2=[12.0, 12.0],
        embedded_life_min=[600.0, 600.0], embedded_peak_dbz=[50.0, 50.0],
    )
    seq = generate_sequence("advection", 4, seed=5, size=96, levels=3, params=params)
    wind = np.array(seq.meta["wind_ms"])
    assert np.hypot(*wind) == pytest.approx(15.0)
    step = wind * DT / 1000.0

    def centroids(frame):
        labels, n = ndimage.label(frame.max(0) >= 35.0)
        edge = np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]]
        inner = [m for m in range(1, n + 1) if m not in edge]
        return np.array([ndimage.center_of_mass(labels == m)[::-1] for m in inner])

    moves = []
    for k in range(3):
        before, after = centroids(seq.frames[k]), centroids(seq.frames[k + 1])
        for c in before:
            d = np.hypot(*(after - c - step).T) if len(after) else np.zeros(0)
            if d.size and d.min() < 2.0:
                moves.append(after[np.argmin(d)] - c)
    assert len(moves) >= 5
    np.testing.assert_allclose(np.mean(moves, axis=0), step, atol=0.3)


def test_stratiform_has_a_bright_band_below_the_freezing_level():
    params = SyntheticConfig(freezing_level_km=[3.0, 3.0], bright_band_dbz=[8.0, 8.0],
                             embedded_cells_per_10k_km2=[0.0, 0.0], noise_dbz=0.0,
                             top_km=8.0, stratiform_cover=[0.5, 0.5])
    seq = generate_sequence("advection", 1, seed=0, size=64, levels=31, params=params)
    z_km = seq.grid.z_m / 1000.0
    rain = seq.frames[0, 0] > 15.0
    profile = np.array([np.median(level[rain]) for level in seq.frames[0]])
    top = int(np.argmax(profile))
    assert 2.4 <= z_km[top] <= 3.0  # just below the freezing level
    assert profile[top] - profile[0] > 5.0
    above = (z_km > 4.0) & (z_km < 6.0)
    assert (profile[above] < profile[0] - 5.0).all()  # snow: weaker aloft
    assert profile[z_km > 7.5].max() == 0.0  # stratiform tops stay low


# --- multicell -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multicell_cells_are_born_and_die_within_an_hour(seed):
    seq = generate_sequence("multicell", 13, seed=seed, size=128, levels=6)
    tracks = track_peaks(seq)
    born = [t for t in tracks if t[0] > 0]
    died = [t for t in tracks if t[1] < 12]
    assert len(born) >= 4 and len(died) >= 4
    lives_min = [(b - a + 1) * 5 for a, b in tracks if a > 0 and b < 12]
    assert lives_min and statistics.median(lives_min) <= 30
    assert max(b - a for a, b in tracks) < 12  # no cell lasts the whole hour


def test_multicell_cells_are_tall():
    seq = generate_sequence("multicell", 4, seed=0, size=96, levels=18)
    z_km = seq.grid.z_m / 1000.0
    tops = [z_km[(frame >= 15.0).any(axis=(1, 2))].max() for frame in seq.frames]
    assert min(tops) >= 7.0


# --- supercell ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_supercell_keeps_a_core_aloft_and_moves_right_of_the_wind(seed):
    seq = generate_sequence("supercell", 13, seed=seed, size=128, levels=18)
    peaks, centres = core_aloft_centroids(seq)
    assert (peaks > 50.0).all()  # > 50 dBZ at or above 5 km, all hour long
    t_s = np.arange(len(centres)) * DT
    velocity = np.array([np.polyfit(t_s, centres[:, c], 1)[0] for c in (0, 1)]) * 1000
    np.testing.assert_allclose(velocity, seq.meta["storm_motion_ms"], atol=1.0)
    wind = np.array(seq.meta["wind_ms"])
    cross = wind[0] * velocity[1] - wind[1] * velocity[0]
    turn = np.degrees(np.arcsin(cross / np.hypot(*wind) / np.hypot(*velocity)))
    assert turn < -10.0  # clockwise: right of the mean wind
    # the returned motion field carries the storm at its own velocity
    j, i = np.unravel_index(np.argmax(seq.frames[6, 8]), seq.frames.shape[2:])
    np.testing.assert_allclose(seq.motion[6, :, j, i], velocity, atol=1.0)
    # and the longest-lived cell is the supercell: the whole hour
    assert max(b - a for a, b in track_peaks(seq)) == 12


def test_supercell_weak_echo_region_hook_and_anvil():
    sim = Simulator("supercell", 3, seed=1, size=160, levels=18)
    volume, _ = sim.render(1)
    storm = sim.scene.supercells[0]
    ux, uy = storm.position(DT)
    x = sim.domain.x
    z = sim.domain.z

    def at(level_km, along_km, right_km=0.0):
        fx, fy = storm.forward
        px = ux + along_km * fx + right_km * fy
        py = uy + along_km * fy - right_km * fx
        i, j = np.argmin(np.abs(x - px)), np.argmin(np.abs(x - py))
        return volume[np.argmin(np.abs(z - level_km)), j, i]

    # weak echo at low levels under the updraft, strong echo overhanging it
    assert at(0.5, 0.0) < 20.0 and at(7.0, 0.0) > 45.0
    # hook: echo wrapping round the rear of the updraft at low levels
    assert at(0.5, -5.0) > 25.0
    # anvil: echo far downshear aloft, nothing beneath it
    assert at(11.0, 45.0) > 5.0 and at(1.5, 45.0) == 0.0


# --- texture, coverage, config, speed ---------------------------------------------


def test_noise_gives_texture_to_the_echo():
    quiet = generate_sequence("advection", 1, seed=3, size=64, levels=2,
                              params=SyntheticConfig(noise_dbz=0.0))
    noisy = generate_sequence("advection", 1, seed=3, size=64, levels=2)
    both = (quiet.frames > 5.0) & (noisy.frames > 5.0)
    diff = (noisy.frames - quiet.frames)[both]
    assert 0.7 < diff.std() < 2.5  # noise_dbz = 1.5
    assert (noisy.frames[quiet.frames == 0] == 0).all()  # the floor stays clean


def test_coverage_mask():
    params = SyntheticConfig(coverage_mask=True, coverage_range_km=20.0)
    seq = generate_sequence("mixed", 2, seed=0, size=64, levels=3, params=params)
    x_km = seq.grid.x_m / 1000.0
    outside = np.hypot(x_km[None, :], x_km[:, None]) > 20.0
    assert np.isnan(seq.frames[:, :, outside]).all()
    assert np.isfinite(seq.frames[:, :, ~outside]).all()
    plain = generate_sequence("mixed", 1, seed=0, size=32, levels=2)
    assert not np.isnan(plain.frames).any()


def test_storm_sizes_are_in_km():
    """The same supercell drawn at 1 km and at 2 km covers the same area."""
    fine = generate_sequence("supercell", 1, seed=6, size=128, dx_km=1.0, levels=4)
    coarse = generate_sequence("supercell", 1, seed=6, size=64, dx_km=2.0, levels=4)
    a_fine = (fine.frames[0, 0] >= 45).sum() * 1.0
    a_coarse = (coarse.frames[0, 0] >= 45).sum() * 4.0
    assert a_coarse == pytest.approx(a_fine, rel=0.25)


def test_cell_life_cycle_shapes_drawn_per_cell_leave_the_rest_of_the_scene():
    wide = SyntheticConfig(cell_growth_end=[0.1, 0.5], cell_decay_start=[0.5, 0.9])
    for regime in ("advection", "multicell"):
        plain = generate_sequence(regime, 6, seed=4, size=96, levels=6, dx_km=2.0)
        shaped = generate_sequence(regime, 6, seed=4, size=96, levels=6, dx_km=2.0,
                                   params=wide)
        again = generate_sequence(regime, 6, seed=4, size=96, levels=6, dx_km=2.0,
                                  params=wide)
        np.testing.assert_array_equal(shaped.frames, again.frames)  # repeatable
        assert not np.array_equal(shaped.frames, plain.frames)
        assert shaped.meta == plain.meta  # the same environment and storms
    # the same cells, born and moving alike: only their life-cycle shape differs
    from nowcast.synthetic.domain import Domain
    from nowcast.synthetic.regimes import build_scene

    domain = Domain.make(96, 6, 2.0, 0.5, 15.0)
    scenes = [build_scene("multicell", np.random.SeedSequence(7), domain, p, 3600.0)
              for p in (SyntheticConfig(), wide)]
    a, b = scenes[0].cells, scenes[1].cells
    for name in ("birth", "life", "x", "y", "u", "v", "peak", "phase0"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.grow_end == 0.3).all() and (a.decay_start == 0.6).all()
    assert 0.1 <= b.grow_end.min() and b.grow_end.max() <= 0.5
    assert 0.5 <= b.decay_start.min() and b.decay_start.max() <= 0.9
    assert b.grow_end.std() > 0.05 and b.decay_start.std() > 0.05
    daughters = b.phase0 > 0  # split off mature: grown by the phase born at
    assert daughters.any() and (b.grow_end[daughters] <= b.phase0[daughters]).all()


def test_an_early_growth_end_makes_a_cell_strong_sooner():
    from nowcast.synthetic.cells import CellPopulation, MotionSum
    from nowcast.synthetic.domain import Domain

    domain = Domain.make(48, 6, 2.0, 0.5, 15.0)

    def peak_at(phase, grow_end=None, decay_start=None):
        shape = {} if grow_end is None else {
            "grow_end": np.array([grow_end]), "decay_start": np.array([decay_start])
        }
        one = {f: np.array([v]) for f, v in dict(
            birth=0.0, life=3000.0, x=0.0, y=0.0, u=0.0, v=0.0, peak=55.0, radius=5.0,
            top=10.0, aspect=1.0, angle=0.0, phase0=0.0).items()}
        vol = np.full((6, 48, 48), -32.0, np.float32)
        CellPopulation(**one, **shape).render(
            vol, MotionSum((0.0, 0.0), (48, 48)), domain, phase * 3000.0, (0.0, 0.0)
        )
        return float(vol.max())

    assert peak_at(0.15, 0.1, 0.6) > peak_at(0.15, 0.3, 0.6) + 3.0
    assert peak_at(0.5, 0.3, 0.4) < peak_at(0.5, 0.3, 0.6) - 3.0  # decays sooner
    for phase in (0.1, 0.45, 0.8):  # no shape given: every cell's 0.3 and 0.6
        assert peak_at(phase) == peak_at(phase, 0.3, 0.6)
    assert peak_at(0.8) < peak_at(0.45) - 3.0


def test_config_ranges_are_checked():
    with pytest.raises(ValidationError, match="wind_speed_ms"):
        SyntheticConfig(wind_speed_ms=[20.0, 5.0])
    with pytest.raises(ValidationError, match="cell_growth_end"):
        SyntheticConfig(cell_growth_end=[0.0, 0.3])
    with pytest.raises(ValidationError, match="must end before"):
        SyntheticConfig(cell_growth_end=[0.2, 0.7], cell_decay_start=[0.6, 0.8])
    with pytest.raises(ConfigError, match="synthetic"):
        load_config(None, environ={"NOWCAST_SYNTHETIC__SUPERCELL_PEAK_DBZ": "[60.0]"})


def test_one_full_size_scan_renders_well_under_a_second():
    sim = Simulator("mixed", 3, seed=0, size=500, levels=18)
    out = np.empty(sim.shape, np.float32)
    times = []
    for k in range(3):
        began = time.perf_counter()
        sim.render(k, out=out)
        times.append(time.perf_counter() - began)
    assert statistics.median(times) < 1.0
