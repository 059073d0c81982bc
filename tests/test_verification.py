"""nowcast.verification: hand-counted tables, pysteps agreement, FSS, accumulation."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from nowcast.verification import (
    Counts,
    FssSums,
    ScoreAccumulator,
    column_max,
    contingency,
    fss,
    fss_sums,
    mae,
)

NAN = np.nan


# -- contingency -----------------------------------------------------------------------


def test_contingency_hand_counted_with_nan_and_equal_values():
    forecast = np.array([[10.0, 20.0, 35.0], [NAN, 40.0, 19.99]])
    observed = np.array([[20.0, 20.0, 10.0], [30.0, NAN, 45.0]])
    tables = contingency(forecast, observed, [20, 35, 50])
    assert list(tables) == [20.0, 35.0, 50.0]
    # 20 dBZ: (0,1) 20 vs 20 is a hit (>=); the NaN forecast at (1,0) is a miss;
    # the uncovered (1,1) is not counted although the forecast has 40 there.
    assert tables[20.0] == Counts(hits=1, misses=3, false_alarms=1, correct_negatives=0)
    assert tables[35.0] == Counts(hits=0, misses=1, false_alarms=1, correct_negatives=3)
    assert tables[50.0] == Counts(0, 0, 0, 5)
    c = tables[20.0]
    assert (c.csi, c.pod, c.far, c.bias) == pytest.approx((0.2, 0.25, 0.5, 0.5))
    assert c.total == 5


def test_contingency_single_threshold_and_shape_errors():
    tables = contingency(np.array([35.0]), np.array([34.99]), 35)
    assert tables == {35.0: Counts(0, 0, 1, 0)}
    with pytest.raises(ValueError, match="does not match"):
        contingency(np.zeros((2, 3)), np.zeros((3, 2)), [20])
    with pytest.raises(ValueError, match="no thresholds"):
        contingency(np.zeros(3), np.zeros(3), [])


def test_composite_differs_from_3d():
    # Two levels of a 1 x 3 strip: the events swap levels between forecast and
    # observation, so the 3D table has no hit but the column maximum matches.
    forecast = np.array([[[40.0, 0.0, 0.0]], [[0.0, 40.0, NAN]]])
    observed = np.array([[[0.0, 40.0, NAN]], [[40.0, 0.0, NAN]]])
    assert contingency(forecast, observed, 35)[35.0] == Counts(0, 2, 2, 0)
    f2, o2 = column_max(forecast), column_max(observed)
    np.testing.assert_array_equal(f2, [[40.0, 40.0, 0.0]])
    np.testing.assert_array_equal(o2, [[40.0, 40.0, NAN]])
    composite = contingency(f2, o2, 35)[35.0]
    assert composite == Counts(2, 0, 0, 0)
    assert composite.csi == 1.0


@pytest.mark.parametrize(
    "counts, expected",
    [
        (Counts(0, 0, 0, 5), (NAN, NAN, NAN, NAN)),  # nothing forecast or observed
        (Counts(0, 0, 3, 1), (0.0, NAN, 1.0, NAN)),  # nothing observed
        (Counts(0, 4, 0, 1), (0.0, 0.0, NAN, 0.0)),  # nothing forecast
        (Counts(2, 2, 0, 0), (0.5, 0.5, 0.0, 0.5)),
        (Counts(3, 1, 3, 9), (3 / 7, 0.75, 0.5, 1.5)),
    ],
)
def test_derived_scores_and_undefined_cases(counts, expected):
    got = (counts.csi, counts.pod, counts.far, counts.bias)
    np.testing.assert_allclose(got, expected, equal_nan=True)
    scores = counts.scores()
    assert scores["hits"] == counts.hits and "bias" in scores


def test_counts_add():
    total = Counts(1, 2, 3, 4) + Counts(10, 20, 30, 40)
    assert total == Counts(11, 22, 33, 44)
    assert sum([Counts(1, 0, 0, 0)] * 3, Counts()) == Counts(3, 0, 0, 0)


@pytest.mark.pysteps
def test_contingency_matches_pysteps_det_cat_fct():
    detcat = pytest.importorskip(
        "pysteps.verification.detcatscores", reason="pysteps extra not installed"
    )
    rng = np.random.default_rng(1)
    forecast = rng.normal(25.0, 15.0, (3, 30, 40))
    observed = forecast + rng.normal(0.0, 8.0, forecast.shape)
    thresholds = [20.0, 35.0, 45.0]
    for thr in thresholds:  # float64 noise never lands exactly on a threshold
        assert not np.any(forecast == thr) and not np.any(observed == thr)
    ours = contingency(forecast, observed, thresholds)
    for thr in thresholds:
        theirs = detcat.det_cat_fct(
            forecast, observed, thr, ["CSI", "POD", "FAR", "BIAS"]
        )
        c = ours[thr]
        assert c.hits > 0 and c.misses > 0 and c.false_alarms > 0
        got = (c.csi, c.pod, c.far, c.bias)
        want = (theirs["CSI"], theirs["POD"], theirs["FAR"], theirs["BIAS"])
        assert got == pytest.approx(want, rel=1e-12)
        # Values quantised to 0.5 dBZ hit the thresholds exactly: our >= thr is
        # pysteps' > (thr - 0.25).
        fq, oq = np.round(forecast * 2) / 2, np.round(observed * 2) / 2
        assert np.any(fq == thr)
        c = contingency(fq, oq, thr)[thr]
        table = detcat.det_cat_fct_init(thr - 0.25)
        detcat.det_cat_fct_accum(table, fq, oq)
        assert (c.hits, c.misses, c.false_alarms, c.correct_negatives) == (
            table["hits"],
            table["misses"],
            table["false_alarms"],
            table["correct_negatives"],
        )


# -- column maximum and MAE ------------------------------------------------------------


def test_column_max_ignores_nan_without_warning():
    vol = np.array(
        [
            [[NAN, 1.0], [NAN, NAN]],
            [[5.0, NAN], [NAN, 2.0]],
            [[3.0, 0.5], [NAN, NAN]],
        ],
        dtype=np.float32,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = column_max(vol)
        stacked = column_max(np.stack([vol, vol + 1]))
    np.testing.assert_array_equal(out, [[5.0, 1.0], [NAN, 2.0]])
    assert out.dtype == np.float32
    assert stacked.shape == (2, 2, 2)
    np.testing.assert_array_equal(stacked[1], out + 1)
    with pytest.raises(ValueError, match="z, y, x"):
        column_max(np.zeros((4, 4)))


def test_mae_over_covered_pixels():
    forecast = np.array([10.0, 20.0, NAN, 40.0])
    observed = np.array([12.0, 15.0, 30.0, NAN])
    assert mae(forecast, observed) == pytest.approx(3.5)  # (2 + 5) / 2
    assert math.isnan(mae(np.array([NAN]), np.array([1.0])))


# -- FSS -------------------------------------------------------------------------------


def _blob(ny=64, nx=64, cy=30, cx=30, r=5, value=50.0):
    yy, xx = np.mgrid[0:ny, 0:nx]
    return np.where((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, value, 0.0)


def test_fss_perfect_disjoint_and_empty():
    obs = _blob()
    for window in (1, 5, 21):
        assert fss(obs, obs, 35, window) == 1.0
    far_away = _blob(cy=30, cx=50, r=3)
    assert fss(far_away, _blob(cy=30, cx=10, r=3), 35, 1) == 0.0
    # Within a wide window the displaced cell scores partly.
    assert 0.0 < fss(_blob(cx=34), obs, 35, 11) < 1.0
    assert math.isnan(fss(np.zeros((8, 8)), np.zeros((8, 8)), 35, 3))


def test_fss_hand_case():
    # One row of four pixels, window 3: covered counts 2, 3, 3, 2 at the edges-in.
    forecast = np.array([[50.0, 0.0, 0.0, 0.0]])
    observed = np.array([[0.0, 50.0, 0.0, 0.0]])
    # Pf = 1/2, 1/3, 0, 0; Po = 1/2, 1/3, 1/3, 0
    # sum (Pf - Po)^2 = 1/9; sum Pf^2 + Po^2 = 1/2 + 2/9 + 1/9 = 5/6
    sums = fss_sums(forecast, observed, 35, 3)
    assert sums.squared_error == pytest.approx(1 / 9)
    assert sums.reference == pytest.approx(5 / 6)
    assert fss(forecast, observed, 35, 3) == pytest.approx(13 / 15)
    # Without coverage at the last pixel its forecast event is ignored:
    # covered counts 2, 3, 2; Pf = 1/2, 1/3, 0; Po = 1/2, 1/3, 1/2.
    forecast = np.array([[50.0, 0.0, 0.0, 50.0]])
    observed = np.array([[0.0, 50.0, 0.0, NAN]])
    assert fss(forecast, observed, 35, 3) == pytest.approx(1 - (1 / 4) / (35 / 36))


def test_fss_sums_add_over_fields_and_levels():
    rng = np.random.default_rng(3)
    fields = [rng.uniform(0, 60, (2, 20, 24)) for _ in range(3)]
    obs = [f + rng.normal(0, 10, f.shape) for f in fields]
    total = sum(
        (fss_sums(f, o, 35, 5) for f, o in zip(fields, obs, strict=True)), FssSums()
    )
    stacked = fss_sums(np.stack(fields), np.stack(obs), 35, 5)
    assert total.squared_error == pytest.approx(stacked.squared_error)
    assert total.reference == pytest.approx(stacked.reference)
    with pytest.raises(ValueError, match="positive"):
        fss(fields[0], obs[0], 35, 0)


@pytest.mark.pysteps
@pytest.mark.parametrize("window", [1, 3, 5, 11, 21])
def test_fss_matches_pysteps_away_from_edges(window):
    spatial = pytest.importorskip(
        "pysteps.verification.spatialscores", reason="pysteps extra not installed"
    )
    rng = np.random.default_rng(window)
    # Events only in [21, 43): no window that reaches past the edge sees one, so
    # our in-domain normalisation and pysteps' zero padding agree.
    forecast = np.zeros((64, 64))
    observed = np.zeros((64, 64))
    forecast[21:43, 21:43] = rng.uniform(0, 60, (22, 22))
    observed[21:43, 21:43] = rng.uniform(0, 60, (22, 22))
    want = spatial.fss(forecast, observed, 35.0, window)
    assert fss(forecast, observed, 35.0, window) == pytest.approx(want, rel=1e-9)


# -- accumulator -----------------------------------------------------------------------


def _pairs(seed, n, shape=(3, 16, 20)):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        f = rng.uniform(0, 60, shape)
        o = f + rng.normal(0, 12, shape)
        o[:, :2, :] = NAN  # a strip without coverage
        o[0, 5, 5] = NAN  # one uncovered voxel under a covered column
        out.append((f, o))
    return out


def test_accumulator_equals_scoring_the_concatenation():
    leads = {300: _pairs(1, 3), 600: _pairs(2, 2)}
    one, a, b = ScoreAccumulator(), ScoreAccumulator(), ScoreAccumulator()
    for lead, pairs in leads.items():
        for i, (f, o) in enumerate(pairs):
            one.add(lead, f, o)
            (a if i % 2 else b).add(lead, f, o)
    merged = a + b
    assert merged.leads == [300, 600] and len(merged) == 5
    assert merged.forecasts(300) == 3
    for lead, pairs in leads.items():
        fs = np.stack([f for f, _ in pairs])
        os_ = np.stack([o for _, o in pairs])
        for kind, (fk, ok) in {
            "3d": (fs, os_),
            "composite": (column_max(fs), column_max(os_)),
        }.items():
            for thr, counts in contingency(fk, ok, [20, 35, 45]).items():
                assert one.counts(lead, thr, kind) == counts
                assert merged.counts(lead, thr, kind) == counts
            assert merged.mae(lead, kind) == pytest.approx(mae(fk, ok))
        fc, oc = column_max(fs), column_max(os_)
        for window in (1, 5, 11, 21):
            assert merged.fss(lead, window) == pytest.approx(fss(fc, oc, 35, window))
            assert one.fss(lead, window) == pytest.approx(fss(fc, oc, 35, window))
    rows = merged.table()
    assert len(rows) == 2 * 2 * 3
    key = (600, "composite", 35.0)
    row = next(r for r in rows if (r["lead_s"], r["kind"], r["threshold"]) == key)
    assert row["csi"] == pytest.approx(merged.counts(600, 35, "composite").csi)
    assert row["forecasts"] == 2
    assert len(merged.fss_table()) == 2 * 4


def test_accumulator_takes_2d_fields_and_refuses_bad_input():
    acc = ScoreAccumulator([35])
    f = _blob(16, 16, 8, 8, 3)
    acc.add(300, f, f)
    assert acc.counts(300, 35, "3d") == acc.counts(300, 35, "composite")
    assert acc.counts(300, 35).csi == 1.0
    with pytest.raises(ValueError, match="does not match"):
        acc.add(300, f, f[:-1])
    with pytest.raises(ValueError, match=r"\(z, y, x\)"):
        acc.add(300, f[0], f[0])
    with pytest.raises(ValueError, match="different settings"):
        acc.merge(ScoreAccumulator([20]))
    with pytest.raises(ValueError, match="kind"):
        acc.counts(300, 35, "2d")


def test_accumulator_json_round_trip_is_strict_and_exact():
    acc = ScoreAccumulator([20, 35, 200], fss_windows=[1, 3])
    for f, o in _pairs(5, 2):
        acc.add(300, f, o)
    text = acc.to_json()
    data = json.loads(text)  # strict JSON: the undefined 200 dBZ scores are null
    row200 = next(r for r in data["table"] if r["threshold"] == 200.0)
    assert row200["pod"] is None and row200["hits"] == 0
    back = ScoreAccumulator.from_json(text)
    assert back == acc
    assert back.table()[0] == acc.table()[0]
    assert back.fss(300, 3) == acc.fss(300, 3)
    # A restored accumulator keeps adding up.
    more = _pairs(6, 1)[0]
    back.add(600, *more)
    acc.add(600, *more)
    assert back == acc
    with pytest.raises(ValueError, match="ScoreAccumulator"):
        ScoreAccumulator.from_json('{"version": 1}')
    with pytest.raises(ValueError, match="JSON"):
        ScoreAccumulator.from_json("{")


def test_accumulator_from_config():
    from nowcast.config import VerificationConfig

    acc = ScoreAccumulator.from_config(VerificationConfig())
    assert acc.thresholds == (20.0, 35.0, 45.0)
    assert acc.fss_threshold == 35.0 and acc.fss_windows == (1, 5, 11, 21)
