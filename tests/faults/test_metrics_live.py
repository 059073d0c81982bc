"""Prometheus metrics of a real daemon: the textfile under state_dir, parsed with
prometheus_client's own parser, and the endpoint scraped with a real HTTP client."""

from __future__ import annotations

import os
import socket
import urllib.request
from datetime import datetime, timedelta, timezone

from prometheus_client.parser import text_string_to_metric_families

from faults.conftest import record, scans
from nowcast.radar import scan_rel_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_textfile_and_http_endpoint_of_a_running_daemon(daemon_factory):
    port = _free_port()
    d = daemon_factory(metrics_port=port, reject_after_s=0.0).start()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    run = scans(9, start=now - timedelta(minutes=40))
    # the first set before the ninth scan: a scan that opens a new day folder is
    # found by listing the folder, a quiet time later, and scans taken in one step
    # get one forecast (the newest), so a run fed fast across midnight would not
    # give a forecast at every scan
    d.feed_run(run[:8], every=0.2)
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "a first set")
    d.feed(run[8])
    bad = d.input / scan_rel_path(now - timedelta(minutes=55))
    bad.parent.mkdir(parents=True, exist_ok=True)
    hidden = bad.with_name("." + bad.name + ".part")
    hidden.write_bytes(b"not a netCDF file")
    os.rename(hidden, bad)
    d.wait_for(lambda: d.issue_of(run[-1]) in d.complete_sets(), 60, "two forecasts")
    d.wait_for(lambda: d.status().get("scans_rejected", 0) >= 1, 30, "a rejection")
    textfile = d.state / "nowcast.prom"
    d.wait_for(lambda: textfile.exists()
               and "nowcast_forecasts_total 2.0" in textfile.read_text()
               and "nowcast_verified_last_hour{" in textfile.read_text(), 30,
               "the textfile to count both forecasts and the verified lead")
    from_file = _samples(textfile.read_text())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        from_http = _samples(r.read().decode())
    for samples in (from_file, from_http):
        assert samples[("nowcast_scans_taken_total", ())] == 9
        assert samples[("nowcast_scans_rejected_total", (("reason", "unreadable"),))] == 1
        assert samples[("nowcast_scans_rejected_total", (("reason", "outlier"),))] == 0
        assert samples[("nowcast_forecasts_failed_total", ())] == 0
        assert samples[("nowcast_forecasts_total", ())] == 2
        assert samples[("nowcast_forecast_latency_seconds_count", ())] == 2
        assert samples[("nowcast_up", ())] == 1
        assert samples[("nowcast_buffer_capacity", ())] == 8
        assert samples[("nowcast_buffer_fill", ())] == 8
        assert 0 <= samples[("nowcast_newest_scan_age_seconds", ())] < 600
        assert samples[("nowcast_model_in_use", ())] == 0  # no checkpoint here
        assert any(k[0] == "nowcast_model_info" for k in samples)
        # the first set's t+5 was verified by the ninth scan: the hour's skill
        verified = {dict(k[1])["method"]: v for k, v in samples.items()
                    if k[0] == "nowcast_verified_last_hour"
                    and dict(k[1])["lead_seconds"] == "300"}
        assert verified and all(v == 1 for v in verified.values()), verified
        hour = [k for k in samples if k[0] == "nowcast_csi_last_hour"]
        assert {dict(k[1])["lead_seconds"] for k in hour} == {"300"}
        assert all(0 <= samples[k] <= 1 for k in hour)
    assert d.stop() == 0
    final = _samples(textfile.read_text())
    assert final[("nowcast_up", ())] == 0
    record("Prometheus metrics of a running daemon",
           "textfile parsed by prometheus_client; /metrics scraped over HTTP",
           "counts, rejections by reason, latency histogram, buffer, age, model, "
           "CSI of the last hour; up 0 after stop")
