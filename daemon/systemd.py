"""systemd's notification protocol (sd_notify): READY=1, WATCHDOG=1, RELOADING=1, STOPPING=1.

A datagram to the socket named by ``$NOTIFY_SOCKET``; a no-op when not run by systemd. Fifteen
lines of protocol are not worth a dependency (the PyPI ``sdnotify`` package is unmaintained
since 2017, and ``systemd-python`` needs libsystemd headers to build).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import structlog

from ..core.clock import Clock, SystemClock

log = structlog.get_logger("invsync.systemd")


def notify(*states: str) -> bool:
    """Send ``KEY=VALUE`` lines to systemd; True if a notify socket was there to take them
    (False also when its queue is full: never blocks)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    # Non-blocking: this runs on the event loop, and a datagram socket whose reader does not
    # keep up (its queue is full) would block the whole daemon in send().
    with socket.socket(
        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
    ) as sock:
        try:
            sock.connect(address)
            sock.send("\n".join(states).encode())
        except BlockingIOError:
            return False  # the notification is dropped; the next one may get through
    return True


def reloading() -> bool:
    """Tell systemd a reload started (``Type=notify-reload`` needs the monotonic timestamp)."""
    now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={now_us}")


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None if not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


async def watchdog(clock: Clock | None = None, healthy: Callable[[], bool] | None = None) -> None:
    """Ping systemd's watchdog from the event loop: a stuck loop stops the pings, systemd
    restarts the service. Pings every ``watchdog_interval()`` on ``clock`` while ``healthy()``
    (e.g. the store has not been unreachable too long); a round where it is not sends nothing,
    so systemd restarts a daemon that cannot recover. Returns at once when systemd asked for
    no watchdog."""
    interval = watchdog_interval()
    if interval is None:
        return
    clock = clock or SystemClock()
    withheld = False
    while True:
        if healthy is None or healthy():
            if withheld:
                log.warning("watchdog_resumed")
                withheld = False
            notify("WATCHDOG=1")
        elif not withheld:
            withheld = True
            log.critical("watchdog_withheld", reason="the daemon is unhealthy: systemd restarts it")
        await clock.sleep(interval)
