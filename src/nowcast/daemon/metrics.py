"""Prometheus metrics of the daemon, from the status it writes each step.

Contract
--------
:class:`Metrics` keeps a ``prometheus_client`` registry. :meth:`Metrics.update`
takes the ``status.json`` content of a step (:mod:`nowcast.daemon.status_file`)
and sets:

- ``nowcast_scans_taken_total``, ``nowcast_scans_rejected_total{reason}`` (one
  of :data:`nowcast.daemon.reject_reasons.LABELS`, every label present from the
  start), ``nowcast_scan_duplicates_total``, ``nowcast_forecasts_total``,
  ``nowcast_forecasts_failed_total``, ``nowcast_errors_total`` (counters since
  the daemon started);
- ``nowcast_forecast_latency_seconds`` (histogram: a scan's close to its set in
  place, observed once for each new forecast set);
- ``nowcast_buffer_fill`` / ``nowcast_buffer_capacity``, ``nowcast_queue_length``,
  ``nowcast_newest_scan_age_seconds``, ``nowcast_step_seconds``, ``nowcast_up``
  (1 while ``running``);
- ``nowcast_model_info{method, name}`` = 1, ``nowcast_model_in_use`` (0 when the
  fallback forecasts);
- ``nowcast_csi{method, threshold}``: the CSI of the newest verified lead, per
  method (the store holds every count).

:meth:`Metrics.update_recent_skill` takes the store's skill rows of the last hour
(:meth:`~nowcast.store.reader.MetricsReader.skill`, summed counts) and sets
``nowcast_csi_last_hour{method, lead_seconds, kind, threshold}`` and
``nowcast_verified_last_hour{method, lead_seconds}`` (forecasts behind them);
the daemon queries when it recorded new scores, else every
:data:`RECENT_SKILL_EVERY_S`, over issue times from :data:`RECENT_SKILL_S` before
its newest scan. A series with no verified forecast in the hour is dropped, not
left at an old value.

:meth:`Metrics.write_textfile` writes them for node-exporter's textfile collector
(``prometheus_client.write_to_textfile``: a temporary then a rename, so a scrape
never reads half a file); :meth:`Metrics.serve` serves them on ``127.0.0.1``
(``prometheus_client.start_http_server``), off by default so that the hardened
unit keeps ``PrivateNetwork``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from nowcast.daemon.reject_reasons import LABELS as REJECT_LABELS

#: latency buckets (s): the mission's step budget is 30 s
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, float("inf"))
RECENT_SKILL_S = 3600.0  # the hour the CSI gauges cover
RECENT_SKILL_EVERY_S = 60.0  # queried at least this often while nothing new


class Metrics:
    """See the module contract."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._counters = {
            key: Counter(name, doc, registry=r)
            for key, name, doc in (
                ("scans_taken", "nowcast_scans_taken", "scans taken"),
                ("duplicates", "nowcast_scan_duplicates", "scans seen twice"),
                ("forecasts_written", "nowcast_forecasts", "forecast sets written"),
                ("forecasts_failed", "nowcast_forecasts_failed",
                 "forecast attempts that failed (retried)"),
                ("errors", "nowcast_errors", "errors logged"),
            )
        }
        self._seen = {key: 0.0 for key in self._counters}
        self.rejected = Counter("nowcast_scans_rejected", "scans set aside, by reason",
                                ["reason"], registry=r)
        for label in REJECT_LABELS:
            self.rejected.labels(reason=label)  # 0 until it happens: rate() works
        self._rejected_seen: dict[str, float] = {}
        self.latency = Histogram(
            "nowcast_forecast_latency_seconds",
            "a scan's close to its forecast set in place", buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._gauges = {
            key: Gauge(name, doc, registry=r)
            for key, name, doc in (
                ("up", "nowcast_up", "1 while the daemon is running"),
                ("fill", "nowcast_buffer_fill", "consecutive scans in the buffer"),
                ("capacity", "nowcast_buffer_capacity", "scans a forecast needs"),
                ("queue", "nowcast_queue_length", "paths waiting to be taken"),
                ("age", "nowcast_newest_scan_age_seconds", "now - newest scan time"),
                ("step", "nowcast_step_seconds", "the last step's duration"),
                ("in_use", "nowcast_model_in_use", "0 when the fallback forecasts"),
            )
        }
        self.model = Gauge("nowcast_model_info", "what forecasts now",
                           ["method", "name"], registry=r)
        self.csi = Gauge("nowcast_csi", "CSI of the newest verified lead",
                         ["method", "threshold"], registry=r)
        self.csi_hour = Gauge(
            "nowcast_csi_last_hour", "CSI over the forecasts issued in the last hour",
            ["method", "lead_seconds", "kind", "threshold"], registry=r,
        )
        self.verified_hour = Gauge(
            "nowcast_verified_last_hour", "forecasts verified in the last hour",
            ["method", "lead_seconds"], registry=r,
        )
        self._last_issue: Any = None

    def update(self, status: dict[str, Any]) -> None:
        counts = {
            "scans_taken": status.get("scans_taken"),
            "duplicates": status.get("duplicates"),
            "forecasts_written": status.get("forecasts_written"),
            "forecasts_failed": status.get("forecasts_failed"),
            "errors": (status.get("errors") or {}).get("count"),
        }
        for key, value in counts.items():
            value = float(value or 0)
            if value > self._seen[key]:
                self._counters[key].inc(value - self._seen[key])
                self._seen[key] = value
        by_reason = dict(status.get("scans_rejected_by_reason") or {})
        other = float(status.get("scans_rejected") or 0) - sum(
            float(v or 0) for v in by_reason.values())
        if other > 0:  # a status without reasons (an older daemon): "other"
            by_reason["other"] = float(by_reason.get("other") or 0) + other
        for reason, value in by_reason.items():
            label = reason if reason in REJECT_LABELS else "other"
            value = float(value or 0)
            seen = self._rejected_seen.get(label, 0.0)
            if value > seen:
                self.rejected.labels(reason=label).inc(value - seen)
                self._rejected_seen[label] = value
        forecast = status.get("last_forecast") or {}
        issue = forecast.get("issue_time")
        if issue and issue != self._last_issue:
            self._last_issue = issue
            if isinstance(forecast.get("latency_s"), (int, float)):
                self.latency.observe(float(forecast["latency_s"]))
        g = self._gauges
        buffer = status.get("buffer") or {}
        g["up"].set(1.0 if status.get("state") == "running" else 0.0)
        g["fill"].set(float(buffer.get("fill") or 0))
        g["capacity"].set(float(buffer.get("capacity") or 0))
        g["queue"].set(float(status.get("queue_length") or 0))
        age = (status.get("last_scan") or {}).get("age_s")
        g["age"].set(float(age) if isinstance(age, (int, float)) else float("nan"))
        step = status.get("step_seconds")
        g["step"].set(float(step) if isinstance(step, (int, float)) else 0.0)
        model = status.get("model") or {}
        g["in_use"].set(0.0 if model.get("fallback_reason") or not model.get("name")
                        else 1.0)
        self.model.clear()
        self.model.labels(method=str(model.get("method") or ""),
                          name=str(model.get("name") or "")).set(1.0)
        self.csi.clear()
        for method, by_threshold in ((status.get("verification") or {}).get("csi")
                                     or {}).items():
            for threshold, value in (by_threshold or {}).items():
                if isinstance(value, (int, float)):
                    self.csi.labels(method=method, threshold=str(threshold)).set(value)

    def update_recent_skill(self, rows: list[dict[str, Any]]) -> None:
        """The last hour's CSI from store skill rows (see the module contract)."""
        self.csi_hour.clear()
        self.verified_hour.clear()
        for row in rows:
            method, lead = str(row["method"]), str(int(row["lead_s"]))
            n = row.get("forecasts") or 0
            csi = row.get("csi")
            if not n:
                continue
            self.verified_hour.labels(method=method, lead_seconds=lead).set(float(n))
            if isinstance(csi, (int, float)) and csi == csi:  # NaN: no event at all
                self.csi_hour.labels(
                    method=method, lead_seconds=lead, kind=str(row["kind"]),
                    threshold=f"{float(row['threshold']):g}",
                ).set(float(csi))

    def write_textfile(self, path: str | Path) -> None:
        from prometheus_client import write_to_textfile

        write_to_textfile(str(path), self.registry)

    def serve(self, port: int):
        """Serve on 127.0.0.1:``port``; returns the server (``shutdown()`` stops it)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr="127.0.0.1",
                                            registry=self.registry)
        return server
