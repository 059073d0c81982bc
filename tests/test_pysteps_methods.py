"""pysteps' extrapolation, S-PROG, ANVIL and LINDA behind the forecaster interface."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import moving_cell_scans, real_case_files
from nowcast.forecasters import get_forecaster
from nowcast.forecasters import pysteps_methods as pm
from nowcast.config import ExtrapolationConfig, RadarConfig, Settings
from nowcast.errors import ForecasterError

pytestmark = pytest.mark.pysteps

DX_M = 1000.0
INTERVAL_S = 300


@pytest.fixture
def pysteps():
    import pysteps  # the test setup installs the pysteps extra: never a skip

    return pysteps


def csi(forecast: np.ndarray, observed: np.ndarray, threshold: float = 35.0) -> float:
    f = np.nan_to_num(forecast, nan=-np.inf) >= threshold
    o = np.nan_to_num(observed, nan=-np.inf) >= threshold
    union = (f | o).sum()
    return float((f & o).sum() / union) if union else 1.0


def cell_case(n_in=8, n_out=3, nz=3, size=96, speed_px=(2.0, 1.0)):
    scans = moving_cell_scans(n=n_in + n_out, nz=nz, size=size, speed_px=speed_px)
    frames = np.stack([s.dbz for s in scans[:n_in]])
    truth = np.stack([s.dbz for s in scans[n_in:]]) if n_out else None
    return frames, [s.time for s in scans[:n_in]], truth


def test_import_is_quiet_and_leaves_warning_filters_alone(pysteps):
    """In a fresh process: nothing on stdout, the warnings filters unchanged."""
    code = (
        "import warnings\n"
        "from nowcast.forecasters.pysteps_methods import import_pysteps\n"
        "before = list(warnings.filters)\n"
        "import_pysteps()\n"
        "import sys\n"
        "assert 'pysteps' in sys.modules\n"
        "assert list(warnings.filters) == before, 'warnings filters changed'\n"
        "print('OK')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "OK\n"


def test_missing_pysteps_names_the_extra(monkeypatch):
    monkeypatch.setattr(pm, "_PYSTEPS", None)
    monkeypatch.setitem(sys.modules, "pysteps.motion.lucaskanade", None)
    with pytest.raises(ForecasterError, match=r"nowcast\[pysteps\]"):
        pm.import_pysteps()


def test_from_settings_reads_the_extrapolation_section(pysteps):
    settings = Settings(
        baselines={"extrapolation": ExtrapolationConfig(ar_order=1, motion_frames=4)},
        radar=RadarConfig(dbz_floor=-10.0),
    )
    f = get_forecaster("anvil", settings)
    assert isinstance(f, pm.Anvil)
    assert (f.ar_order, f.motion_frames, f.dbz_floor) == (1, 4, -10.0)
    assert get_forecaster("sprog").ar_order == ExtrapolationConfig().ar_order
    assert get_forecaster("extrapolation", None, motion_frames=5).motion_frames == 5


def test_extrapolation_follows_a_moving_cell(pysteps, capsys):
    frames, times, truth = cell_case()
    result = get_forecaster("extrapolation").forecast(
        frames, times, 3, dx_m=DX_M
    )
    assert capsys.readouterr().out == ""
    assert result.dbz.shape == (3, *frames.shape[1:])
    assert result.dbz.dtype == np.float32
    assert np.isfinite(result.dbz).all()  # inflow at the edges is the floor
    assert result.dbz.min() >= 0.0
    assert csi(result.dbz[2], truth[2]) > 0.9  # t+15 min
    # motion: 2 px and 1 px a 5-minute step at 1 km
    assert result.motion.shape == (3, 2, *frames.shape[2:])
    core = frames[-1, 0] >= 35.0
    u, v = result.motion[0, 0][core], result.motion[0, 1][core]
    np.testing.assert_allclose(u, 2 * DX_M / INTERVAL_S, atol=0.3)
    np.testing.assert_allclose(v, 1 * DX_M / INTERVAL_S, atol=0.3)


def test_extrapolation_keeps_no_coverage_and_fills_old_gaps(pysteps):
    frames, times, truth = cell_case()
    frames[:, :, :, -10:] = np.nan  # a sector the radar never covers
    frames[2:5, :, 30:40, 30:40] = np.nan  # a short outage over the cell's path
    result = get_forecaster("extrapolation").forecast(frames, times, 3, dx_m=DX_M)
    np.testing.assert_array_equal(
        np.isnan(result.dbz), np.broadcast_to(np.isnan(frames[-1]), result.dbz.shape)
    )
    assert np.nanmin(result.dbz) >= 0.0
    assert csi(result.dbz[2], truth[2]) > 0.9


def test_interval_defaults_to_the_frame_step_and_scales_motion(pysteps):
    frames, times, truth = cell_case(n_out=2)
    f = get_forecaster("extrapolation")
    half = f.forecast(frames, times, 2, dx_m=DX_M, interval_s=INTERVAL_S * 2)
    # lead 1 at 10 minutes is where the cell is two scans later
    assert csi(half.dbz[0], truth[1]) > 0.9
    np.testing.assert_allclose(half.motion[0, 0][frames[-1, 0] >= 35], 6.67, atol=0.3)


@pytest.mark.parametrize("name", ["sprog", "anvil", "linda"])
def test_sprog_and_anvil_forecast_a_moving_cell(pysteps, capsys, name):
    frames, times, truth = cell_case(nz=2, size=64, speed_px=(1.5, 1.0))
    frames[:, :, :, :4] = np.nan
    result = get_forecaster(name).forecast(frames, times, 3, dx_m=DX_M)
    assert capsys.readouterr().out == ""  # pysteps prints a lot
    assert result.method == name
    assert result.dbz.shape == (3, 2, 64, 64)
    assert result.dbz.dtype == np.float32
    covered = np.isfinite(frames[-1])
    # ANVIL with steady motion: no NaN inside rain (and none anywhere covered)
    assert np.isfinite(result.dbz[:, covered]).all()
    assert np.isnan(result.dbz[:, ~covered]).all()
    assert np.nanmin(result.dbz) >= 0.0
    assert csi(result.dbz[0], truth[0]) > 0.7
    assert np.nanmax(result.dbz[0]) > 45.0


def test_anvil_needs_ar_order_plus_two_frames(pysteps):
    frames, times, _ = cell_case(n_in=3, n_out=0, nz=1, size=32)
    with pytest.raises(ForecasterError, match="needs 4 frames"):
        get_forecaster("anvil").forecast(frames, times, 2, dx_m=DX_M)


def test_no_echo_gives_the_floor_and_no_motion(pysteps):
    frames, times, _ = cell_case(n_out=0, nz=2, size=32)
    frames[:] = 0.0
    for name in ("extrapolation", "sprog", "anvil", "linda"):
        result = get_forecaster(name).forecast(frames, times, 2, dx_m=DX_M)
        assert (result.dbz == 0.0).all(), name
        assert (result.motion == 0.0).all(), name


def test_extrapolation_matches_pysteps_skill_on_a_real_case(pysteps):
    """fmi-20160928 at 250 x 250: CSI 35 dBZ at t+5 near pysteps' own (~0.36)."""
    from nowcast.radar import pool, read_scan

    files = real_case_files("fmi-20160928")[:15]
    if len(files) < 15:
        pytest.skip("shared radar case fmi-20160928 not found")
    scans = [read_scan(f) for f in files]
    frames = pool(np.stack([s.dbz for s in scans]), 2)
    f = get_forecaster("extrapolation")
    result = f.forecast(
        frames[:8], [s.time for s in scans[:8]], 7, dx_m=2 * scans[0].grid.dx_m
    )
    ours = [csi(result.dbz[k], frames[8 + k]) for k in range(7)]
    persistence = [csi(frames[7], frames[8 + k]) for k in range(7)]
    assert ours[0] > 0.3
    assert ours[0] > persistence[0] + 0.1
    assert ours[-1] < ours[0]


def test_sprog_survives_a_nearly_dry_real_case():
    """pysteps' percentile mask indexes past the end on nearly dry scenes."""
    from nowcast.radar import pool, read_scan

    files = real_case_files("knmi-20210110")
    if not files:
        pytest.skip("radar-cases-more/knmi-20210110 not found")
    scans = [read_scan(f) for f in files[:8]]
    frames = np.stack([pool(s.dbz, 2) for s in scans])
    result = get_forecaster("sprog").forecast(
        frames, [s.time for s in scans], 7, dx_m=2000.0, interval_s=300
    )
    assert result.dbz.shape == (7, 1, 250, 250)
    assert result.info["sprog_extrapolated_levels"] == [0]


def test_linda_settings_frames_and_its_fallback(pysteps, monkeypatch):
    from nowcast.config import LindaConfig

    settings = Settings(baselines={"linda": LindaConfig(ari_order=2,
                                                         max_num_features=9)})
    f = get_forecaster("linda", settings)
    assert isinstance(f, pm.Linda)
    assert (f.ari_order, f.max_num_features, f.feature_method) == (2, 9, "blob")
    with pytest.raises(ForecasterError, match="ari_order is 1 or 2"):
        pm.Linda(ari_order=3)
    frames, times, truth = cell_case(n_in=3, n_out=2, nz=1, size=48)
    with pytest.raises(ForecasterError, match="needs 4 frames"):
        f.forecast(frames, times, 2, dx_m=DX_M)
    # a level LINDA cannot fit is extrapolated, and said so
    real = pm.import_pysteps().linda
    monkeypatch.setattr(pm.import_pysteps(), "linda",
                        lambda *a, **k: (_ for _ in ()).throw(ValueError("no blob")))
    result = get_forecaster("linda").forecast(frames, times, 2, dx_m=DX_M)
    assert result.info["linda_extrapolated_levels"] == [0]
    assert csi(result.dbz[0], truth[0]) > 0.7
    monkeypatch.setattr(pm.import_pysteps(), "linda", real)


def test_linda_beats_extrapolation_on_a_real_convective_case(pysteps):
    """mch-20150515 at 250 x 250: LINDA (deterministic) is at least as good as
    extrapolation at 35 dBZ by t+35, its reason to exist (growth and decay)."""
    from nowcast.radar import pool, read_scan

    files = real_case_files("mch-20150515")[16:31]
    if len(files) < 15:
        pytest.skip("shared radar case mch-20150515 not found")
    scans = [read_scan(f) for f in files]
    frames = pool(np.stack([s.dbz for s in scans]), 2)
    times = [s.time for s in scans[:8]]
    linda = get_forecaster("linda").forecast(frames[:8], times, 7, dx_m=2000.0)
    extrap = get_forecaster("extrapolation").forecast(frames[:8], times, 7,
                                                      dx_m=2000.0)
    assert linda.info["linda_extrapolated_levels"] == []
    ours = np.mean([csi(linda.dbz[k], frames[8 + k]) for k in range(7)])
    theirs = np.mean([csi(extrap.dbz[k], frames[8 + k]) for k in range(7)])
    assert ours >= theirs - 0.01, (ours, theirs)
