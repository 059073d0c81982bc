"""The forecasting pipeline and ``nowcast predict`` over a directory of scans."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from conftest import moving_cell_scans, real_case_files
from nowcast.forecasters.interface import ForecastResult, Forecaster
from nowcast.cli import main
from nowcast.config import OutputConfig, Settings
from nowcast.errors import ForecasterError
from nowcast.pipeline import WriteOptions, forecast_set, prepare_frames, write_set
from nowcast.radar.sequences import find_sequences
from nowcast.radar import pool, read_scan, scan_rel_path, write_scan

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
SIZE, NZ = 40, 2
LEADS_S = [300 * k for k in range(1, 8)]


def _times(steps_min):
    return [T0 + timedelta(minutes=m) for m in steps_min]


def write_scans(directory: Path, n: int, skip: tuple[int, ...] = ()) -> list[Path]:
    scans = moving_cell_scans(n=n, nz=NZ, size=SIZE, start=T0)
    return [write_scan(s, directory) for k, s in enumerate(scans) if k not in skip]


def predict(capsys, *argv) -> tuple[int, str]:
    status = main(["predict", *map(str, argv)])
    return status, capsys.readouterr().out


def forecast_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/g_*") if p.is_dir())


# --- find_sequences -----------------------------------------------------------


def test_find_sequences_closes_every_run_of_n():
    times = _times(range(0, 50, 5))  # 10 scans
    seqs = find_sequences(times, 8, 300)
    assert seqs == [tuple(range(k, k + 8)) for k in range(3)]


def test_find_sequences_tolerance_gaps_and_order():
    # 6.5 min is within 1.5 x 5 min; 10 min is a gap; 1 min is too soon
    times = _times([0, 5, 11.5, 16.5, 26.5, 31.5, 32.5, 37.5])
    assert find_sequences(times, 3, 300, 1.5) == [(0, 1, 2), (1, 2, 3)]
    shuffled = [times[i] for i in (3, 0, 2, 1)]
    assert find_sequences(shuffled, 4, 300) == [(1, 3, 2, 0)]
    assert find_sequences(times, 3, 300, 2.5) == [
        (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5)
    ]
    assert find_sequences([], 8, 300) == []


def test_prepare_frames_pools_and_refuses_mixed_grids():
    scans = moving_cell_scans(n=3, nz=NZ, size=SIZE)
    frames, grid = prepare_frames(scans, 2)
    assert frames.shape == (3, NZ, SIZE // 2, SIZE // 2)
    assert frames.dtype == np.float32
    assert grid.shape == (NZ, SIZE // 2, SIZE // 2)
    other = moving_cell_scans(n=1, nz=NZ, size=SIZE + 2)
    with pytest.raises(ForecasterError, match="one grid"):
        prepare_frames([*scans, *other], 2)
    with pytest.raises(ForecasterError, match="pool factor"):
        prepare_frames(moving_cell_scans(n=2, nz=1, size=SIZE + 1), 2)


class _SteadyMotion(Forecaster):
    """The last frame, and a constant motion of (3, -1) m/s."""

    name = "steady"

    def forecast(self, frames, times, n_leads, *, dx_m, interval_s=None, context=None):
        dbz = np.repeat(frames[-1:], n_leads, axis=0)
        motion = np.zeros((n_leads, 2, *frames.shape[2:]), np.float32)
        motion[:, 0], motion[:, 1] = 3.0, -1.0
        return ForecastResult(dbz=dbz, method=self.name, motion=motion)


def _forecast_and_write(forecaster, scans, settings, output_dir):
    frames, pooled = prepare_frames(scans, settings.grid.pool_factor)
    result = forecast_set(
        forecaster, frames, [s.time for s in scans], settings.grid.output_frames,
        dx_m=pooled.dx_m, interval_s=settings.grid.interval_s,
    )
    options = WriteOptions.from_settings(settings, output_dir=output_dir)
    return result, write_set(
        result, scans[-1].grid, scans[-1].time, options, model_name="m1"
    )


def test_write_set_upsamples_dbz_and_motion(tmp_path):
    settings = Settings(output=OutputConfig(write_motion=True))
    scans = moving_cell_scans(n=8, nz=NZ, size=SIZE, start=T0)
    result, res = _forecast_and_write(_SteadyMotion(), scans, settings, tmp_path)
    assert res.issue_time == scans[-1].time
    assert [f.lead_s for f in res.files] == LEADS_S
    assert result.dbz.shape == (7, NZ, SIZE // 2, SIZE // 2)
    assert res.verify_frames.shape == result.dbz.shape
    with netCDF4.Dataset(res.files[0].path) as ds:
        assert ds.variables["DBZ"].shape == (1, NZ, SIZE, SIZE)
        np.testing.assert_allclose(ds.variables["U"][0], 3.0, atol=1e-4)
        np.testing.assert_allclose(ds.variables["V"][0], -1.0, atol=1e-4)
        assert ds.nowcast_method == "steady"
        assert ds.nowcast_model == "m1"


@pytest.mark.parametrize("upsample", [True, False])
def test_verify_frames_are_what_a_reader_of_the_files_scores(tmp_path, upsample):
    """The daemon verifies ``verify_frames``; ``nowcast eval`` reads the files and
    pools them: the two must be the same numbers, clamp and rounding included."""
    settings = Settings(output=OutputConfig(upsample=upsample))
    scans = moving_cell_scans(n=8, nz=NZ, size=SIZE, start=T0)

    class Hot(_SteadyMotion):  # above dbz_max and below the floor: clamped on write
        def forecast(self, *args, **kwargs):
            res = super().forecast(*args, **kwargs)
            res.dbz = res.dbz * 2.1 - 4.003
            return res

    result, res = _forecast_and_write(Hot(), scans, settings, tmp_path)
    r = settings.radar
    assert result.dbz.max() > r.dbz_max and result.dbz.min() < r.dbz_floor
    for k, f in enumerate(res.files):
        written = read_scan(f.path, "DBZ", r.dbz_floor).dbz
        if upsample:
            written = pool(written, settings.grid.pool_factor)
        np.testing.assert_array_equal(res.verify_frames[k], written)
    assert res.verify_frames.max() <= r.dbz_max
    assert not np.array_equal(res.verify_frames, result.dbz)


def test_forecast_set_refuses_a_result_that_breaks_the_interface():
    scans = moving_cell_scans(n=8, nz=NZ, size=SIZE, start=T0)
    frames, pooled = prepare_frames(scans, 2)
    times = [s.time for s in scans]

    class Short(_SteadyMotion):
        def forecast(self, frames, times, n_leads, **kw):
            return super().forecast(frames, times, n_leads - 1, **kw)

    class Holes(_SteadyMotion):
        def forecast(self, *args, **kwargs):
            res = super().forecast(*args, **kwargs)
            res.dbz[0, 0, 0, 0] = np.nan
            return res

    with pytest.raises(ForecasterError, match="shape"):
        forecast_set(Short(), frames, times, 7, dx_m=pooled.dx_m, interval_s=300)
    with pytest.raises(ForecasterError, match="not finite"):
        forecast_set(Holes(), frames, times, 7, dx_m=pooled.dx_m, interval_s=300)


# --- nowcast predict ------------------------------------------------------------


def test_predict_writes_titan_sets_and_skips_a_corrupt_scan(tmp_path, capsys):
    scans_dir, out = tmp_path / "scans", tmp_path / "out"
    paths = write_scans(scans_dir, 10)
    # an 11th scan, 5 minutes after the last: a truncated copy
    bad = scans_dir / scan_rel_path(T0 + timedelta(minutes=50))
    data = paths[-1].read_bytes()
    bad.write_bytes(data[: len(data) // 3])

    status, text = predict(
        capsys, "--input", scans_dir, "--output", out, "--method", "persistence"
    )
    assert status == 0, text
    assert f"REJECTED {bad}" in text
    sets = forecast_dirs(out)
    # scans 8, 9 and 10 close runs of 8; 10 is the corrupt one
    issues = [T0 + timedelta(minutes=m) for m in (35, 40, 45)]
    assert [d.name for d in sets] == [f"g_{t:%H%M%S}" for t in issues]
    assert "3 forecast sets (21 files)" in text
    assert (out / "_latest_data_info").exists()
    for folder, issue in zip(sets, issues):
        assert folder.parent.name == f"{issue:%Y%m%d}"
        names = sorted(p.name for p in folder.iterdir())
        assert names == [f"f_{lead:08d}.nc" for lead in LEADS_S]
        for lead in (LEADS_S[0], LEADS_S[-1]):
            scan = read_scan(folder / f"f_{lead:08d}.nc")
            assert scan.time == issue + timedelta(seconds=lead)
            assert scan.dbz.shape == (NZ, SIZE, SIZE)
    # persistence: every lead repeats the newest scan (upsampled from 20 x 20)
    last = read_scan(paths[9])
    first = read_scan(sets[-1] / "f_00000300.nc")
    assert np.abs(first.dbz - last.dbz).max() < 12.0
    np.testing.assert_allclose(first.grid.x_m, last.grid.x_m)


def test_predict_gap_breaks_sequences(tmp_path, capsys):
    scans_dir, out = tmp_path / "scans", tmp_path / "out"
    write_scans(scans_dir, 14, skip=(5,))  # 0-4, then 6-13: one run of 8
    status, text = predict(
        capsys, "--input", scans_dir, "--output", out, "--method", "persistence"
    )
    assert status == 0, text
    assert [d.name for d in forecast_dirs(out)] == ["g_130500"]  # scan 13 = 13:05


def test_predict_no_upsample_writes_the_pooled_grid(tmp_path, capsys):
    scans_dir, out = tmp_path / "scans", tmp_path / "out"
    paths = write_scans(scans_dir, 9)
    status, text = predict(
        capsys, "--input", scans_dir, "--output", out, "--method", "persistence",
        "--no-upsample", "--limit", "1",
    )
    assert status == 0, text
    (folder,) = forecast_dirs(out)
    scan = read_scan(folder / "f_00000300.nc")
    assert scan.dbz.shape == (NZ, SIZE // 2, SIZE // 2)
    source = read_scan(paths[0])
    np.testing.assert_allclose(scan.grid.x_m, source.grid.pooled(2).x_m, atol=0.01)


def test_predict_with_nothing_to_forecast(tmp_path, capsys):
    scans_dir = tmp_path / "scans"
    write_scans(scans_dir, 4)
    status, text = predict(
        capsys, "--input", scans_dir, "--output", tmp_path / "out",
        "--method", "persistence",
    )
    assert status == 1
    assert "nothing to forecast" in text


def test_predict_refuses_a_model_without_method_model(tmp_path, capsys):
    scans_dir = tmp_path / "scans"
    scans_dir.mkdir()
    status = main(
        ["predict", "--input", str(scans_dir), "--method", "persistence",
         "--model", str(tmp_path / "x.pt")]
    )
    assert status == 2
    assert "--model needs --method model" in capsys.readouterr().err


def test_predict_reads_each_scan_once(tmp_path, capsys, monkeypatch):
    import nowcast.radar.pooled

    scans_dir = tmp_path / "scans"
    write_scans(scans_dir, 11)
    shutil.copy(  # a second file at an existing time is reported, not used
        next(scans_dir.rglob("*_120000.nc")), scans_dir / "dup_20240601_120000.nc"
    )
    calls: list[Path] = []
    real = nowcast.radar.pooled.read_scan

    def counting(path, *args, **kwargs):
        calls.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(nowcast.radar.pooled, "read_scan", counting)
    status, text = predict(
        capsys, "--input", scans_dir, "--output", tmp_path / "out",
        "--method", "persistence",
    )
    assert status == 0, text
    assert "4 forecast sets" in text
    assert "same time as" in text
    assert len(calls) == len(set(calls)) == 11


def test_the_shipped_real2d_model_forecasts_a_real_case(tmp_path, capsys):
    """models/real2d.pt through `nowcast predict` on 9 scans of an FMI case it was
    not trained on: TITAN-layout files that say which model made them, and a t+5
    forecast that verifies better than persistence (CSI at 35 dBZ)."""
    repo = Path(__file__).resolve().parents[1]
    files = real_case_files("fmi-20160928")[:9]
    if len(files) < 9:
        pytest.skip("shared radar case fmi-20160928 not found")
    scans_dir, out = tmp_path / "scans", tmp_path / "out"
    for f in files:
        (scans_dir / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, scans_dir / f.parent.name / f.name)
    status, text = predict(
        capsys, "--input", scans_dir, "--output", out, "--method", "model",
        "--model", repo / "models" / "real2d.pt",
    )
    assert status == 0, text
    sets = forecast_dirs(out)
    assert len(sets) == 2  # scans 8 and 9 close runs of 8
    first = sets[0] / "f_00000300.nc"
    with netCDF4.Dataset(first) as ds:
        assert (ds.nowcast_method, ds.nowcast_model) == ("model", "real2d")

    def csi35(forecast, observed):
        ok = np.isfinite(forecast) & np.isfinite(observed)
        f, o = forecast[ok] >= 35.0, observed[ok] >= 35.0
        return (f & o).sum() / max((f | o).sum(), 1)

    observed = read_scan(files[8]).dbz
    model = csi35(read_scan(first).dbz, observed)
    persistence = csi35(read_scan(files[7]).dbz, observed)
    assert model > persistence + 0.05, (model, persistence)


def _bare(scans):
    """The scans on a grid with no mapping and no origin (a gridder that states
    neither)."""
    from dataclasses import replace

    grid = replace(scans[0].grid, mapping_name=None, mapping_attrs={}, origin=None)
    return [replace(s, grid=grid) for s in scans]


def test_a_grid_without_mapping_or_origin_is_said_once(tmp_path):
    from structlog.testing import capture_logs

    import nowcast.pipeline as pipeline

    pipeline._said.clear()
    scans = _bare(moving_cell_scans(n=9, nz=NZ, size=SIZE, start=T0))
    with capture_logs() as logs:
        for end in (8, 9):
            _, res = _forecast_and_write(
                _SteadyMotion(), scans[end - 8:end], Settings(), tmp_path)
    said = [e for e in logs if e["event"] == "grid_mapping"]
    assert len(said) == 1
    assert "no grid mapping and no origin" in said[0]["note"]
    assert "site_latitude" in said[0]["note"]
    with netCDF4.Dataset(res.files[0].path) as ds:
        assert "grid_mapping" not in ds["DBZ"].ncattrs()
        assert "origin_latitude" not in ds.variables


def test_the_configured_site_is_the_origin_written(tmp_path):
    """[radar] site_latitude/longitude place a grid that states no origin: Py-ART's
    origin and an azimuthal equidistant mapping about the site."""
    import pyart

    from nowcast.config import RadarConfig

    settings = Settings(radar=RadarConfig(site_latitude=60.2, site_longitude=24.9,
                                          site_altitude_m=55.0))
    scans = _bare(moving_cell_scans(n=8, nz=NZ, size=SIZE, start=T0))
    _, res = _forecast_and_write(_SteadyMotion(), scans, settings, tmp_path)
    with netCDF4.Dataset(res.files[0].path) as ds:
        m = ds[ds["DBZ"].grid_mapping]
        assert m.grid_mapping_name == "azimuthal_equidistant"
        assert (m.latitude_of_projection_origin, m.longitude_of_projection_origin) \
            == (60.2, 24.9)
        assert float(ds["origin_altitude"][0]) == 55.0
    grid = pyart.io.read_grid(str(res.files[0].path))
    assert float(grid.origin_latitude["data"][0]) == 60.2


def test_site_latitude_without_longitude_is_refused():
    from pydantic import ValidationError

    from nowcast.config import RadarConfig

    with pytest.raises(ValidationError, match="set together"):
        RadarConfig(site_latitude=60.0)
