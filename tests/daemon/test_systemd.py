"""systemd integration: sd_notify READY/WATCHDOG/STOPPING from the real daemon, and the unit."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from invsync.core.clock import ManualClock
from invsync.daemon import systemd

ROOT = Path(__file__).resolve().parents[2]
INVSYNC = Path(sys.executable).parent / "invsync"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert systemd.watchdog_interval() is None


async def test_watchdog_pings_once_per_interval_on_the_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")  # a ping every 15 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    def pings() -> list[str]:
        got = []
        while True:
            try:
                got.append(listener.recv(4096).decode())
            except BlockingIOError:
                return got

    clock = ManualClock()
    task = asyncio.create_task(systemd.watchdog(clock))
    try:
        for _ in range(100):
            if clock.sleepers:
                break
            await asyncio.sleep(0)
        assert pings() == ["WATCHDOG=1"]  # at once, then every 15 s of the clock
        for _ in range(3):
            clock.advance(14.9)
            for _ in range(20):
                await asyncio.sleep(0)
            assert pings() == []
            clock.advance(0.1)
            for _ in range(100):
                deadline = clock.next_deadline
                if deadline is not None and deadline > clock.now() + 14:  # parked again
                    break
                await asyncio.sleep(0)
            assert pings() == ["WATCHDOG=1"]
    finally:
        task.cancel()
        listener.close()


async def test_watchdog_returns_at_once_when_systemd_asked_for_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    clock = ManualClock()
    await asyncio.wait_for(systemd.watchdog(clock), timeout=1)
    assert clock.sleepers == 0


def test_daemon_sends_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(0.2)
    port = _free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[redis]\ndata_dir = "data"\n[server]\nport = {port}\n[[locations]]\nid = "wh-east"\n'
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [str(INVSYNC), "run", "-c", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 20
        ready_at = None
        while time.monotonic() < deadline:
            try:
                messages.append(listener.recv(4096).decode())
            except TimeoutError:
                continue
            if any("READY=1" in m for m in messages) and ready_at is None:
                ready_at = time.monotonic()
                # READY=1 comes only once the HTTP API answers.
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            if ready_at and sum("WATCHDOG=1" in m for m in messages) >= 2:
                break
        assert ready_at is not None, messages
        assert sum("WATCHDOG=1" in m for m in messages) >= 2, messages
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        try:
            while True:
                messages.append(listener.recv(4096).decode())
        except TimeoutError:
            pass
        assert any("STOPPING=1" in m for m in messages), messages
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pid_file = tmp_path / "data" / "valkey.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        listener.close()


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (apt-get install systemd)",
)
def test_the_unit_file_verifies(tmp_path: Path) -> None:
    unit = tmp_path / "invsync.service"
    # ExecStart must exist for `verify`; point it at this venv's invsync.
    text = (ROOT / "deploy" / "invsync.service").read_text()
    unit.write_text(text.replace("/opt/invsync/.venv/bin/invsync", str(INVSYNC)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    text_lines = text.splitlines()
    for needed in (
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=invsync",
        "DynamicUser=yes",
    ):
        assert any(line.startswith(needed) for line in text_lines), needed


def test_notify_never_blocks_when_the_reader_does_not_keep_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A datagram queue that is full drops the notification instead of blocking the event loop
    (a blocked loop would stall the whole daemon)."""
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    try:
        sent = [systemd.notify("WATCHDOG=1") for _ in range(1000)]  # nobody reads them
        assert sent[0] is True and sent[-1] is False  # the queue filled up; no call blocked
        listener.recv(4096)
        assert systemd.notify("WATCHDOG=1") is True  # room again
    finally:
        listener.close()
