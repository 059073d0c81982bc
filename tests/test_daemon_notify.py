"""sd_notify over a real AF_UNIX datagram socket, as systemd's Type=notify uses."""

from __future__ import annotations

import os
import socket

import pytest

from nowcast.daemon.notify import Notifier, watchdog_period


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_ready_watchdog_status_on_a_real_socket(notify_socket):
    path, sock = notify_socket
    n = Notifier(environ={"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("buffer 0/8")
    assert n.watchdog()
    assert n.status("buffer 3/8, queue 0")
    assert n.stopping()
    messages = received(sock)
    assert messages[0].splitlines() == [
        "READY=1", f"MAINPID={os.getpid()}", "STATUS=buffer 0/8"
    ]
    assert messages[1:] == ["WATCHDOG=1", "STATUS=buffer 3/8, queue 0", "STOPPING=1"]
    n.close()


def test_abstract_namespace_socket():
    name = f"@nowcast-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(2.0)
    try:
        n = Notifier(environ={"NOTIFY_SOCKET": name})
        assert n.watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_systemd_it_is_a_no_op(tmp_path):
    n = Notifier(environ={})
    assert not n.enabled and not n.ready() and not n.watchdog()
    gone = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert not gone.watchdog()  # never raises
    assert gone.failing and gone.failures == 1


def test_a_socket_that_comes_back_gets_the_next_ping(tmp_path, capsys):
    """systemd re-executing (or a full queue) must not silence the watchdog for
    good: the notifier tries again with every message and logs the spell once."""
    path = tmp_path / "notify.sock"
    n = Notifier(environ={"NOTIFY_SOCKET": str(path)})
    assert not n.watchdog() and not n.status("x")  # no socket yet
    assert n.failing and n.failures == 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        assert n.watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
        assert not n.failing
        # a full queue (EAGAIN): nobody reads; the notifier keeps going
        sent = 0
        while n.watchdog():
            sent += 1
            assert sent < 100_000
        assert n.failing
        received(sock)  # the reader drains the queue
        assert n.watchdog() and not n.failing
    finally:
        sock.close()
        n.close()
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert text.count("sd_notify failed") <= 2  # once a spell, not once a message


def test_watchdog_period_follows_systemd():
    assert watchdog_period(30.0, {}) == 30.0
    assert watchdog_period(30.0, {"WATCHDOG_USEC": "20000000"}) == 10.0
    env = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}
    assert watchdog_period(30.0, env) == 30.0  # meant for another process
    env["WATCHDOG_PID"] = str(os.getpid())
    assert watchdog_period(30.0, env) == 10.0
