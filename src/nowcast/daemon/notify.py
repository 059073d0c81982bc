"""sd_notify: tell systemd the daemon is ready, alive and what it is doing.

Contract
--------
- :class:`Notifier` sends datagrams to the ``AF_UNIX`` socket named by
  ``$NOTIFY_SOCKET`` (systemd sets it for ``Type=notify`` units), directly, without
  libsystemd. A name starting with ``@`` is in the abstract namespace (the ``@``
  becomes a NUL byte). Without the variable every call is a no-op that returns
  ``False``, so the daemon runs the same outside systemd.
- Messages are newline-separated ``KEY=value`` lines: :meth:`~Notifier.ready`
  (``READY=1``, sent once the model is loaded), :meth:`~Notifier.watchdog`
  (``WATCHDOG=1``, sent only while the loop is healthy), :meth:`~Notifier.status`
  (``STATUS=`` one line for ``systemctl status``), :meth:`~Notifier.reloading`
  and :meth:`~Notifier.stopping`.
- Sending never raises. A failed send (the socket's queue full: EAGAIN,
  ENOBUFS; the socket missing or refusing while systemd re-executes) is logged
  once for the spell, the socket is reopened and every later message is tried
  again; the first one that goes through logs that notifications work again.
  :attr:`~Notifier.failures` counts the failed sends. So a passing hiccup never
  silences the watchdog for good (which would have systemd kill a healthy
  daemon), and a socket gone for good costs one failed non-blocking syscall a
  message.
- :func:`watchdog_period` is how often to ping: half of ``$WATCHDOG_USEC`` when
  systemd set it for this process (``$WATCHDOG_PID`` unset or ours), capped by the
  configured period.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


def _address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """Datagrams to systemd's notify socket (see the module contract).

    Parameters
    ----------
    socket_path
        The socket; ``None`` reads ``$NOTIFY_SOCKET`` from ``environ``.
    environ
        The environment (``os.environ`` by default).
    """

    def __init__(
        self,
        socket_path: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.socket_path = socket_path or env.get("NOTIFY_SOCKET") or None
        self._sock: socket.socket | None = None
        self._failing = False
        self.failures = 0

    @property
    def enabled(self) -> bool:
        """Whether systemd asked for notifications (``$NOTIFY_SOCKET`` set)."""
        return self.socket_path is not None

    @property
    def failing(self) -> bool:
        """Whether the last send failed."""
        return self._failing

    def send(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True when it was sent."""
        if not self.enabled or not lines:
            return False
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(payload, _address(self.socket_path))
        except OSError as exc:
            self.failures += 1
            if not self._failing:
                log.warning(
                    "sd_notify failed; tried again with each message",
                    socket=self.socket_path, error=str(exc),
                )
            self._failing = True
            self.close()  # a fresh socket next time
            return False
        if self._failing:
            log.info("sd_notify works again", socket=self.socket_path,
                     failed=self.failures)
            self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        lines = ["READY=1", f"MAINPID={os.getpid()}"]
        if status:
            lines.append(f"STATUS={status}")
        return self.send(*lines)

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


def watchdog_period(
    configured_s: float, environ: Mapping[str, str] | None = None
) -> float:
    """Seconds between ``WATCHDOG=1`` pings (see the module contract)."""
    env = os.environ if environ is None else environ
    period = float(configured_s)
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if usec and (not pid or pid == str(os.getpid())):
        try:
            period = min(period, int(usec) / 2e6)
        except ValueError:
            pass
    return max(period, 0.01)
