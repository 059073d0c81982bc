"""TITAN storm tracking between scans, and the weighted trends of each track.

Contract
--------
:func:`track_storms` takes the storms of every scan (oldest first, from
:func:`~nowcast.forecasters.titan_storms.identify_storms`) and their times, and
returns one :class:`Track` per storm of the newest scan, carrying its history
(time, centroid, projected area, volume per scan).

Matching a scan to the one before, as TITAN does:

1. **Overlap.** Each previous storm's footprint is moved to the current time by
   its forecast (its trend velocity times the step, rounded to whole pixels) and
   intersected with every current footprint. A pair is a candidate when the
   overlap's fraction of the previous area plus its fraction of the current area
   exceeds ``overlap_threshold`` (0.6).
2. **Minimum cost.** Storms in no candidate pair are matched one to one by
   :func:`scipy.optimize.linear_sum_assignment` on ``weight_distance * distance
   (km) + weight_volume * |change of cube-root volume| (km)``; pairs whose
   centroid displacement implies more than ``max_speed_kmh`` are rejected.
3. Current storms still unmatched start new tracks (zero motion until seen
   twice).

Splits and mergers (several candidates on one side of an overlap):

- a current storm takes the history of the previous storm it overlaps most
  (mergers: the other previous storms end there, unless they continue into
  another storm of their own);
- a previous storm with several such children continues as the child it overlaps
  most; each other child starts a new track with a copy of the parent's history;
- at a split or merger the centroid jump is not motion: the inherited history is
  moved so that the parent's forecast lands on the new centroid, and its areas and
  volumes are scaled by new / forecast, so the trends from before the event carry
  on.

Trends (:func:`weighted_slope`) are weighted least-squares slopes over the newest
``len(weights)`` entries of a history (the newest included), with TITAN's weights
``1.0, 0.9, ..., 0.4`` newest first, multiplied by ``min(history duration /
history_full_s, 1)`` (:func:`trend_scale`); the duration counts inherited history.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from nowcast.forecasters.titan_storms import Storm, footprint_overlap

TITAN_WEIGHTS: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


@dataclass(frozen=True)
class TrackParams:
    """Matching and trend parameters (``[baselines.titan]``)."""

    overlap_threshold: float = 0.6
    max_speed_kmh: float = 100.0
    weights: tuple[float, ...] = TITAN_WEIGHTS
    history_full_s: float = 1200.0
    weight_distance: float = 1.0
    weight_volume: float = 1.0


def weighted_slope(
    times_s: Sequence[float], values: Sequence[float], weights: Sequence[float]
) -> float:
    """Weighted least-squares slope of ``values`` against ``times_s``.

    Parameters
    ----------
    times_s, values
        Oldest first.
    weights
        Newest first: ``weights[0]`` goes with the newest entry. Only the newest
        ``len(weights)`` entries are used.

    Returns
    -------
    float
        Units of ``values`` per second; 0 with fewer than two distinct times.
    """
    n = min(len(times_s), len(weights))
    if n < 2:
        return 0.0
    t = np.asarray(times_s[-n:], dtype=np.float64)
    v = np.asarray(values[-n:], dtype=np.float64)
    w = np.asarray(weights[:n], dtype=np.float64)[::-1]
    tm = np.sum(w * t) / np.sum(w)
    vm = np.sum(w * v) / np.sum(w)
    den = np.sum(w * (t - tm) ** 2)
    if den <= 0:
        return 0.0
    return float(np.sum(w * (t - tm) * (v - vm)) / den)


def trend_scale(duration_s: float, history_full_s: float) -> float:
    """TITAN's damping of young tracks: ``min(duration / history_full_s, 1)``."""
    return float(min(max(duration_s, 0.0) / history_full_s, 1.0))


@dataclass
class Track:
    """One storm's history, oldest first; ``storm`` is its newest observation."""

    track_id: int
    storm: Storm
    times_s: list[float] = field(default_factory=list)
    x_km: list[float] = field(default_factory=list)
    y_km: list[float] = field(default_factory=list)
    area_km2: list[float] = field(default_factory=list)
    volume_km3: list[float] = field(default_factory=list)
    parent_id: int | None = None

    @classmethod
    def start(cls, track_id: int, t_s: float, storm: Storm) -> Track:
        track = cls(track_id=track_id, storm=storm)
        track.add(t_s, storm)
        return track

    def add(self, t_s: float, storm: Storm) -> None:
        self.storm = storm
        self.times_s.append(float(t_s))
        self.x_km.append(storm.x_km)
        self.y_km.append(storm.y_km)
        self.area_km2.append(storm.area_km2)
        self.volume_km3.append(storm.volume_km3)

    @property
    def duration_s(self) -> float:
        return self.times_s[-1] - self.times_s[0]

    def velocity(self, params: TrackParams) -> tuple[float, float]:
        """Trend velocity ``(vx, vy)`` in km/s, damped for young tracks."""
        scale = trend_scale(self.duration_s, params.history_full_s)
        if scale == 0.0:
            return 0.0, 0.0
        vx = weighted_slope(self.times_s, self.x_km, params.weights)
        vy = weighted_slope(self.times_s, self.y_km, params.weights)
        return vx * scale, vy * scale

    def area_rate(self, params: TrackParams) -> float:
        """Trend of the projected area in km^2/s, damped for young tracks."""
        scale = trend_scale(self.duration_s, params.history_full_s)
        return weighted_slope(self.times_s, self.area_km2, params.weights) * scale

    def rebased(
        self, track_id: int, t_s: float, storm: Storm, params: TrackParams
    ) -> Track:
        """A copy continued by ``storm`` across a split or merger (module notes)."""
        dt = t_s - self.times_s[-1]
        vx, vy = self.velocity(params)
        ox = storm.x_km - (self.x_km[-1] + vx * dt)
        oy = storm.y_km - (self.y_km[-1] + vy * dt)
        area_fc = self.area_km2[-1] + self.area_rate(params) * dt
        if area_fc <= 0:
            area_fc = self.area_km2[-1]
        ra = storm.area_km2 / area_fc
        rv = storm.volume_km3 / max(self.volume_km3[-1], 1e-12)
        new = copy.copy(self)
        new.track_id = track_id
        new.times_s = list(self.times_s)
        new.x_km = [x + ox for x in self.x_km]
        new.y_km = [y + oy for y in self.y_km]
        new.area_km2 = [a * ra for a in self.area_km2]
        new.volume_km3 = [v * rv for v in self.volume_km3]
        new.add(t_s, storm)
        return new


class _Ids:
    def __init__(self) -> None:
        self.next = 1

    def __call__(self) -> int:
        self.next += 1
        return self.next - 1


def track_storms(
    scans: Sequence[Sequence[Storm]],
    times_s: Sequence[float],
    *,
    dx_km: float,
    params: TrackParams = TrackParams(),
) -> list[Track]:
    """Track storms over all scans; return the tracks of the newest scan's storms.

    Parameters
    ----------
    scans
        The storms of each scan, oldest first.
    times_s
        Scan times in seconds (any origin), strictly increasing.
    dx_km
        Pixel size (forecast footprints are moved by whole pixels).
    params
        Matching and trend parameters.

    Returns
    -------
    list of Track
        One per storm of the newest scan, in that scan's storm order.
    """
    ids = _Ids()
    tracks = [Track.start(ids(), times_s[0], s) for s in scans[0]]
    for k in range(1, len(scans)):
        dt = times_s[k] - times_s[k - 1]
        tracks = match_scan(tracks, scans[k], times_s[k], dt, dx_km, params, ids)
    return tracks


def match_scan(
    tracks: list[Track],
    storms: Sequence[Storm],
    t_s: float,
    dt: float,
    dx_km: float,
    params: TrackParams,
    ids: _Ids,
) -> list[Track]:
    """Continue ``tracks`` (previous scan) into ``storms`` (this scan)."""
    n_prev, n_cur = len(tracks), len(storms)
    result: list[Track | None] = [None] * n_cur
    score = np.zeros((n_prev, n_cur))
    for i, track in enumerate(tracks):
        vx, vy = track.velocity(params)
        shift = (int(round(vy * dt / dx_km)), int(round(vx * dt / dx_km)))
        prev = track.storm
        for j, cur in enumerate(storms):
            n = footprint_overlap(prev, cur, shift)
            if n:
                score[i, j] = n / prev.n_pixels + n / cur.n_pixels
    cand = score > params.overlap_threshold
    main_parent = np.full(n_cur, -1)
    if n_prev and n_cur:
        main_parent = np.where(cand.any(axis=0), np.argmax(score, axis=0), -1)
    for i, track in enumerate(tracks):
        children = [j for j in range(n_cur) if main_parent[j] == i]
        if not children:
            continue
        event = len(children) > 1 or any(cand[:, j].sum() > 1 for j in children)
        if not event:
            track.add(t_s, storms[children[0]])
            result[children[0]] = track
            continue
        keep = max(children, key=lambda j: score[i, j])
        for j in children:
            new_id = track.track_id if j == keep else ids()
            child = track.rebased(new_id, t_s, storms[j], params)
            if j != keep:
                child.parent_id = track.track_id
            result[j] = child
    free_prev = [i for i in range(n_prev) if not cand[i].any()]
    free_cur = [j for j in range(n_cur) if not cand[:, j].any()]
    for i, j in _cost_match(tracks, storms, free_prev, free_cur, dt, params):
        tracks[i].add(t_s, storms[j])
        result[j] = tracks[i]
    return [
        r if r is not None else Track.start(ids(), t_s, storms[j])
        for j, r in enumerate(result)
    ]


def _cost_match(
    tracks: list[Track],
    storms: Sequence[Storm],
    free_prev: list[int],
    free_cur: list[int],
    dt: float,
    params: TrackParams,
) -> list[tuple[int, int]]:
    if not free_prev or not free_cur:
        return []
    max_km = params.max_speed_kmh * dt / 3600.0
    big = 1e12
    cost = np.full((len(free_prev), len(free_cur)), big)
    for a, i in enumerate(free_prev):
        prev = tracks[i].storm
        for b, j in enumerate(free_cur):
            cur = storms[j]
            dist = float(np.hypot(cur.x_km - prev.x_km, cur.y_km - prev.y_km))
            if dist > max_km:
                continue
            dvol = abs(np.cbrt(cur.volume_km3) - np.cbrt(prev.volume_km3))
            cost[a, b] = params.weight_distance * dist + params.weight_volume * dvol
    rows, cols = linear_sum_assignment(cost)
    return [
        (free_prev[a], free_cur[b]) for a, b in zip(rows, cols) if cost[a, b] < big
    ]
