"""Prometheus metrics of the daemon, from the status it writes each step.

Contract
--------
:class:`Metrics` keeps a ``prometheus_client`` registry. :meth:`Metrics.update`
takes the ``status.json`` content of a step (:mod:`nowcast.daemon.status_file`)
and sets:

- ``nowcast_scans_taken_total``, ``nowcast_scans_rejected_total``,
  ``nowcast_scan_duplicates_total``, ``nowcast_forecasts_total``,
  ``nowcast_errors_total`` (counters since the daemon started);
- ``nowcast_forecast_latency_seconds`` (histogram: a scan's close to its set in
  place, observed once for each new forecast set);
- ``nowcast_buffer_fill`` / ``nowcast_buffer_capacity``, ``nowcast_queue_length``,
  ``nowcast_newest_scan_age_seconds``, ``nowcast_step_seconds``, ``nowcast_up``
  (1 while ``running``);
- ``nowcast_model_info{method, name}`` = 1, ``nowcast_model_in_use`` (0 when the
  fallback forecasts);
- ``nowcast_csi{method, threshold}``: the CSI of the newest verified lead, per
  method (the store holds every count).

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

#: latency buckets (s): the mission's step budget is 30 s
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, float("inf"))


class Metrics:
    """See the module contract."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._counters = {
            key: Counter(name, doc, registry=r)
            for key, name, doc in (
                ("scans_taken", "nowcast_scans_taken", "scans taken"),
                ("scans_rejected", "nowcast_scans_rejected", "scans set aside"),
                ("duplicates", "nowcast_scan_duplicates", "scans seen twice"),
                ("forecasts_written", "nowcast_forecasts", "forecast sets written"),
                ("errors", "nowcast_errors", "errors logged"),
            )
        }
        self._seen = {key: 0.0 for key in self._counters}
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
        self._last_issue: Any = None

    def update(self, status: dict[str, Any]) -> None:
        counts = {
            "scans_taken": status.get("scans_taken"),
            "scans_rejected": status.get("scans_rejected"),
            "duplicates": status.get("duplicates"),
            "forecasts_written": status.get("forecasts_written"),
            "errors": (status.get("errors") or {}).get("count"),
        }
        for key, value in counts.items():
            value = float(value or 0)
            if value > self._seen[key]:
                self._counters[key].inc(value - self._seen[key])
                self._seen[key] = value
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

    def write_textfile(self, path: str | Path) -> None:
        from prometheus_client import write_to_textfile

        write_to_textfile(str(path), self.registry)

    def serve(self, port: int):
        """Serve on 127.0.0.1:``port``; returns the server (``shutdown()`` stops it)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr="127.0.0.1",
                                            registry=self.registry)
        return server
