"""systemd integration (``Type=notify``, ``WatchdogSec=``): READY, WATCHDOG, STATUS, STOPPING.

Uses the ``sdnotify`` package (pure Python, no libsystemd headers to build
against, unlike ``systemd-python``) for the datagram protocol.  Without
``NOTIFY_SOCKET`` in the environment every method does nothing, so the
daemon behaves the same in a terminal, a container or under systemd.

The watchdog interval is half of ``WATCHDOG_USEC`` (systemd's advice), and
applies only when ``WATCHDOG_PID`` is unset or names this process.  The
service pings only while its inference thread is alive, so a daemon whose
model thread died is restarted by systemd rather than left running idle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import sdnotify


class Notifier:
    """sd_notify for this process; a no-op when not started by systemd with ``NOTIFY_SOCKET``."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.enabled = bool(environ.get("NOTIFY_SOCKET"))
        self._notifier = None
        if self.enabled:
            self._notifier = sdnotify.SystemdNotifier()
        usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
        watchdog = self.enabled and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        #: Seconds between WATCHDOG=1 pings, or None when systemd expects none.
        self.watchdog_interval: float | None = int(usec) / 2e6 if watchdog else None

    def _send(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")
