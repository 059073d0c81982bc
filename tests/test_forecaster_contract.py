"""Every registered forecaster through the one interface; the fallback; shared tracks.

As pysteps' interface tests do: each name of the registry is built and run on the
same input, and the result is held to the contract of
:mod:`nowcast.forecasters.interface` (shape, dtype, units, NaN exactly where the
newest frame has no coverage, never below the floor, motion in m/s of the right
shape).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from conftest import moving_cell_scans
from nowcast.errors import ForecasterError
from nowcast.forecasters import available, get_forecaster
from nowcast.forecasters.fallback import WithFallback
from nowcast.forecasters.interface import (
    ForecastResult,
    Forecaster,
    SequenceContext,
    output_problem,
)
from nowcast.forecasters.model import ModelForecaster
from nowcast.forecasters.titan import TitanForecaster
from nowcast.radar import pool

pytestmark = pytest.mark.usefixtures("torch_one_thread")

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
TIMES = [T0 + timedelta(minutes=5 * k) for k in range(8)]
DX = 2000.0
FLOOR = 0.0


def frames_with_a_hole() -> np.ndarray:
    """8 pooled frames ``(8, 2, 24, 24)`` of a moving 55 dBZ cell; a corner uncovered."""
    scans = moving_cell_scans(n=8, nz=2, size=48, speed_px=(2.0, 1.0))
    frames = np.stack([pool(s.dbz, 2) for s in scans]).astype(np.float32)
    frames[:, :, :4, :4] = np.nan
    return frames


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from test_model_forecaster import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", levels=(2,))


def build(name: str, checkpoint) -> Forecaster:
    if name == "model":
        return get_forecaster(name, checkpoint=checkpoint, device="cpu")
    return get_forecaster(name)


@pytest.mark.parametrize("name", available())
def test_every_registered_forecaster_keeps_the_contract(name, checkpoint):
    frames = frames_with_a_hole()
    fc = build(name, checkpoint)
    res = fc.forecast(frames, TIMES, 5, dx_m=DX, interval_s=300.0)
    assert isinstance(res, ForecastResult)
    assert res.method == fc.name and res.method
    assert res.dbz.shape == (5, 2, 24, 24) and res.dbz.dtype == np.float32
    uncovered = np.isnan(frames[-1])
    # NaN exactly where the newest frame has no coverage, finite elsewhere
    assert (np.isnan(res.dbz) == uncovered[None]).all(), name
    assert output_problem(res, frames, 5) is None
    assert np.nanmin(res.dbz) >= FLOOR
    assert np.nanmax(res.dbz) <= np.nanmax(frames) + 1.0  # dBZ, not linear Z
    if res.motion is not None:
        assert res.motion.shape == (5, 2, 24, 24)
        speed = np.hypot(*np.nan_to_num(res.motion).transpose(1, 0, 2, 3))
        assert speed.max() < 100.0  # m/s: the cell moves 2 px (4 km) in 5 min
    # fewer leads: the first ones agree (no hidden dependence on n_leads)
    short = fc.forecast(frames, TIMES, 2, dx_m=DX, interval_s=300.0)
    np.testing.assert_allclose(short.dbz, res.dbz[:2], atol=1e-3)


def test_an_unknown_name_lists_every_valid_one():
    with pytest.raises(ForecasterError) as err:
        get_forecaster("no_such_method")
    for name in available():
        assert name in str(err.value)


def test_a_forecaster_refuses_what_is_not_a_sequence():
    fc = get_forecaster("persistence")
    frames = frames_with_a_hole()
    with pytest.raises(ForecasterError, match="7 times"):
        fc.forecast(frames, TIMES[:7], 3, dx_m=DX)
    with pytest.raises(ForecasterError, match=r"\(t, z, y, x\)"):
        fc.forecast(frames[0], TIMES, 3, dx_m=DX)
    with pytest.raises(ForecasterError, match="n_leads"):
        fc.forecast(frames, TIMES, 0, dx_m=DX)


# --- the fallback ----------------------------------------------------------------


class Misbehaving(Forecaster):
    name = "convlstm3d"

    def __init__(self, how: str) -> None:
        self.how = how

    def forecast(self, frames, times, n_leads, *, dx_m, interval_s=None, context=None):
        if self.how == "raise":
            raise RuntimeError("CUDA out of memory")
        dbz = np.repeat(frames[-1:], n_leads, axis=0).astype(np.float32)
        if self.how == "shape":
            dbz = dbz[:, :, :-1]
        if self.how == "nan":
            dbz[:, :, 10, 10] = np.nan
        return ForecastResult(dbz, self.name)


@pytest.mark.parametrize(
    ("how", "why"),
    [("raise", "CUDA out of memory"), ("shape", "shape"), ("nan", "not finite")],
)
def test_the_fallback_stands_in_and_says_why(how, why):
    built = []

    def fallback():
        built.append(1)
        return get_forecaster("persistence")

    fc = WithFallback(Misbehaving(how), fallback)
    frames = frames_with_a_hole()
    res = fc.forecast(frames, TIMES, 3, dx_m=DX)
    assert res.method == "persistence"
    assert res.info["fallback_reason"].startswith("convlstm3d failed: ")
    assert why in res.info["fallback_reason"]
    assert fc.failures == 1 and built == [1]
    np.testing.assert_array_equal(res.dbz, np.repeat(frames[-1:], 3, axis=0))


def test_a_working_primary_is_not_replaced_and_a_failing_fallback_raises():
    fc = WithFallback(Misbehaving("good"), lambda: pytest.fail("fallback built"))
    res = fc.forecast(frames_with_a_hole(), TIMES, 3, dx_m=DX)
    assert res.method == "convlstm3d" and "fallback_reason" not in res.info
    assert fc.failures == 0
    broken = WithFallback(Misbehaving("raise"), lambda: Misbehaving("raise"))
    with pytest.raises(RuntimeError, match="out of memory"):
        broken.forecast(frames_with_a_hole(), TIMES, 3, dx_m=DX)


# --- one tracking per issue -------------------------------------------------------


def test_titan_and_the_storm_prior_share_one_tracking(checkpoint, monkeypatch):
    calls = []
    real = TitanForecaster._track

    def counted(self, frames, times_s, dx_m):
        calls.append(len(frames))
        return real(self, frames, times_s, dx_m)

    monkeypatch.setattr(TitanForecaster, "_track", counted)
    frames = frames_with_a_hole()
    titan = TitanForecaster()
    model = ModelForecaster(checkpoint, device="cpu", tracker=TitanForecaster())

    alone = [titan.forecast(frames, TIMES, 3, dx_m=DX),
             model.forecast(frames, TIMES, 3, dx_m=DX)]
    assert calls == [8, 8]  # no context: each tracks for itself

    calls.clear()
    context = SequenceContext(frames, TIMES)
    shared = [titan.forecast(frames, TIMES, 3, dx_m=DX, context=context),
              model.forecast(frames, TIMES, 3, dx_m=DX, context=context)]
    assert calls == [8] and context.hits == 1
    for a, b in zip(alone, shared):
        np.testing.assert_array_equal(a.dbz, b.dbz)

    # a context made for other frames is ignored, never reused
    calls.clear()
    other = SequenceContext(frames[::-1].copy(), TIMES)
    res = titan.forecast(frames, TIMES, 3, dx_m=DX, context=other)
    assert calls == [8] and other.hits == 0
    np.testing.assert_array_equal(res.dbz, alone[0].dbz)
    # other tracker settings do not share tracks
    calls.clear()
    TitanForecaster(threshold_dbz=30.0).forecast(frames, TIMES, 3, dx_m=DX,
                                                 context=context)
    assert calls == [8]
