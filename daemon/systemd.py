"""systemd's notification protocol (sd_notify): READY=1, WATCHDOG=1, RELOADING=1, STOPPING=1.

A datagram to the socket named by ``$NOTIFY_SOCKET``; a no-op when not run by systemd. Fifteen
lines of protocol are not worth a dependency (the PyPI ``sdnotify`` package is unmaintained
since 2017, and ``systemd-python`` needs libsystemd headers to build).
"""

from __future__ import annotations

import os
import socket
import time

from ..core.clock import Clock, SystemClock


def notify(*states: str) -> bool:
    """Send ``KEY=VALUE`` lines to systemd; True if a notify socket was there to take them."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall("\n".join(states).encode())
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


async def watchdog(clock: Clock | None = None) -> None:
    """Ping systemd's watchdog from the event loop: a stuck loop stops the pings, systemd
    restarts the service. Pings every ``watchdog_interval()`` on ``clock``; returns at once
    when systemd asked for none."""
    interval = watchdog_interval()
    if interval is None:
        return
    clock = clock or SystemClock()
    while True:
        notify("WATCHDOG=1")
        await clock.sleep(interval)
