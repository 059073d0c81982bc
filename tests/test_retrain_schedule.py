"""The nightly retraining schedule in the daemon: the APScheduler job, its trigger
and limits, ``next_retrain`` in status.json, the child job, and the loop's use."""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from daemon_support import FakeClock, fake_provider, workspace
from nowcast.daemon import Daemon, run_loop
from nowcast.daemon.notify import Notifier
from nowcast.daemon.schedule import (
    JOB_ID,
    RetrainJob,
    RetrainScheduler,
    next_retrain,
    retrain_command,
)
from nowcast.daemon.status_file import read_status
from nowcast.errors import ConfigError


def settings_with(tmp_path, **retrain):
    lines = "".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}\n"
        for k, v in retrain.items()
    )
    return workspace(tmp_path, "[retrain]\n" + lines)


@pytest.fixture
def scheduler(tmp_path):
    s = settings_with(tmp_path, cron="30 2 * * *", misfire_grace_s=1800)
    calls = []
    sched = RetrainScheduler(s, job=lambda: calls.append(1))
    yield sched, s, calls
    sched.shutdown()


def test_the_job_has_the_cron_trigger_grace_and_one_instance(scheduler):
    sched, s, calls = scheduler
    sched.start()
    assert sched.running
    job = sched.scheduler.get_job(JOB_ID)
    assert isinstance(job.trigger, CronTrigger)
    fields = {f.name: str(f) for f in job.trigger.fields}
    assert (fields["minute"], fields["hour"], fields["day"]) == ("30", "2", "*")
    assert job.misfire_grace_time == 1800
    assert job.coalesce is True and job.max_instances == 1
    now = datetime.now(UTC)
    assert sched.next_run_time(now) == job.next_run_time.astimezone(UTC)
    assert sched.next_run_time(now) == next_retrain(s.retrain, now)
    assert calls == []  # nothing ran at start


def test_status_next_retrain_comes_from_the_job(tmp_path, scheduler):
    sched, s, _ = scheduler
    sched.start()
    job = sched.scheduler.get_job(JOB_ID)
    job.modify(next_run_time=datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC))
    clock = FakeClock()
    d = Daemon(s, clock=clock, provider=fake_provider(), scheduler=sched)
    d.initialize(clock.now)
    d.step(clock.now)
    assert read_status(s.paths.status_file)["next_retrain"] == "2031-01-02T03:04:05Z"
    d.shutdown(clock.now)


def test_a_daemon_without_a_scheduler_starts_no_thread(tmp_path):
    import threading

    s = workspace(tmp_path)
    before = set(threading.enumerate())
    clock = FakeClock()
    d = Daemon(s, clock=clock, provider=fake_provider())
    d.initialize(clock.now)
    d.step(clock.now)
    assert d.scheduler is None
    assert set(threading.enumerate()) <= before
    expected = next_retrain(s.retrain, clock.now).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert read_status(s.paths.status_file)["next_retrain"] == expected
    d.shutdown(clock.now)


def test_disabled_retraining_has_no_job_and_no_thread(tmp_path):
    s = settings_with(tmp_path, enabled=False)
    sched = RetrainScheduler(s, job=lambda: None)
    sched.start()
    assert not sched.running and sched.next_run_time(datetime.now(UTC)) is None
    enabled = s.model_copy(
        update={"retrain": s.retrain.model_copy(update={"enabled": True})}
    )
    sched.update(enabled)  # SIGHUP turned it on
    assert sched.running and sched.scheduler.get_job(JOB_ID) is not None
    sched.update(s)  # and off again
    assert sched.scheduler.get_job(JOB_ID) is None
    sched.shutdown()
    assert not sched.running


def test_a_bad_cron_is_a_config_error(tmp_path):
    s = settings_with(tmp_path, cron="61 2 * * *")
    with pytest.raises(ConfigError, match="retrain.cron"):
        RetrainScheduler(s, job=lambda: None).start()


def test_the_job_runs_the_child_in_its_own_group_and_stop_ends_it(tmp_path):
    s = workspace(tmp_path)
    cmd = retrain_command(s)
    assert cmd[:6] == [sys.executable, "-m", "nowcast", "retrain", "--now",
                       "--log-format"]  # fmt: skip
    assert cmd[-2:] == ["--config", str(s.source)]
    assert RetrainJob([sys.executable, "-c", "raise SystemExit(3)"])() == 3
    job = RetrainJob([sys.executable, "-c", "import time; time.sleep(60)"], grace_s=5)
    sched = BackgroundScheduler()
    sched.start()
    try:
        sched.add_job(job)  # runs at once, in the scheduler's thread
        deadline = time.monotonic() + 20
        while job.proc is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert job.proc is not None
        t0 = time.monotonic()
        job.stop()
        assert job.proc.wait(10) == -signal.SIGTERM
        assert time.monotonic() - t0 < 5
        assert job() is None  # a stopped job starts no new child
    finally:
        sched.shutdown(wait=True)


class FakeScheduler:
    def __init__(self, daemon) -> None:
        self.calls = []
        self.settings = daemon.settings

    def start(self):
        self.calls.append("start")

    def update(self, settings):
        self.calls.append("update")

    def next_run_time(self, now):
        return datetime(2030, 1, 1, tzinfo=UTC)

    def shutdown(self):
        self.calls.append("shutdown")


class LiveObserver:
    def start(self):
        pass

    def is_alive(self):
        return True

    def stop(self):
        pass

    def join(self, timeout=None):
        pass


def test_the_loop_starts_and_stops_the_scheduler(tmp_path):
    s = workspace(tmp_path, poll_interval_s=0.01)
    d = Daemon(s, provider=fake_provider())
    made = []

    def factory(daemon):
        made.append(FakeScheduler(daemon))
        return made[-1]

    assert run_loop(
        d, notifier=Notifier(None), observer_factory=LiveObserver,
        scheduler_factory=factory, max_steps=2,
    ) == 0  # fmt: skip
    assert made[0].calls == ["start", "shutdown"]
    assert read_status(s.paths.status_file)["next_retrain"] == "2030-01-01T00:00:00Z"


def test_a_scheduler_that_cannot_start_leaves_the_daemon_running(tmp_path):
    s = workspace(tmp_path, poll_interval_s=0.01)
    d = Daemon(s, provider=fake_provider())

    def broken(daemon):
        raise RuntimeError("no threads left")

    status = run_loop(
        d, notifier=Notifier(None), observer_factory=LiveObserver,
        scheduler_factory=broken, max_steps=2,
    )  # fmt: skip
    assert status == 0 and d.scheduler is None
    recent = read_status(s.paths.status_file)["errors"]["recent"]
    assert any(e["kind"] == "retrain" and "not scheduled" in e["message"] for e in recent)
