"""``invsync run`` as a real process: start-up, sharing its store, shutdown, crashes, holds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from invsync.adapters.signing import SIGNATURE_HEADER, verify
from tests.daemon.helpers import (
    CONFIG,
    Daemon,
    data_dir,
    http_get,
    invsync,
    kill_valkey,
    ok,
    on_hand,
    pid_alive,
    server_port,
    show,
    socket_url,
    valkey_pid,
    wait_until,
    write_config,
)

#: How long a daemon may take to exit after SIGTERM (it drains, then stops Valkey).
STOP_WITHIN_S = 10


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    """A config in ``tmp_path`` (store in ``tmp_path/data``); any server left behind is killed."""
    path = write_config(tmp_path)
    try:
        yield path
    finally:
        kill_valkey(path)


#: A webhook channel beside CONFIG's marketplaces (which lack urls and credentials).
WHOLESALE = """
[[channels]]
id = "wholesale"
kind = "webhook"
url = "{url}"
secret_env = "TEST_WHOLESALE_SECRET"
"""
SECRET = "s3cret"


@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver in a thread: (url, payloads it accepted with a good signature)."""
    payloads: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            good = verify(SECRET, body, self.headers.get(SIGNATURE_HEADER))
            if good:
                payloads.append(json.loads(body))
            self.send_response(200 if good else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/push", payloads
    finally:
        server.shutdown()
        server.server_close()


def test_run_serves_the_cli_from_its_own_server_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    with receiver() as (url, payloads):
        _run_serve_and_stop(tmp_path, url, payloads)


def _run_serve_and_stop(tmp_path: Path, url: str, payloads: list[dict[str, Any]]) -> None:
    config = write_config(tmp_path, CONFIG + WHOLESALE.format(url=url))
    env = {"TEST_WHOLESALE_SECRET": SECRET}
    with Daemon(config, env=env) as daemon:
        started = daemon.wait_for("started")
        assert started["embedded"] is True
        assert started["store"] == socket_url(config)
        assert started["http"] == f"127.0.0.1:{server_port(config)}"
        # Only channels whose config works run: CONFIG's marketplaces have no url or
        # credentials, so each is logged as not started, with the reason.
        assert started["channels"] == ["wholesale"]
        skipped = {e["channel"]: e for e in daemon.events() if e["event"] == "channel_not_started"}
        assert set(skipped) == {"web", "amazon", "ebay", "walmart"}
        assert all(e["reason"] for e in skipped.values())
        assert http_get(config, "/healthz") == (200, b'{"status":"ok"}')
        server = valkey_pid(config)
        assert pid_alive(server)

        assert on_hand(config, "TEE", "wh-east", 7)["locations"]["wh-east"]["on_hand"] == 7
        # The CLI used the daemon's server: same process, still running after the command.
        assert valkey_pid(config) == server
        assert pid_alive(server)
        # ... and its API: the change reached the channel, signed.
        wait_until(lambda: bool(payloads), 5, "the push to the wholesale channel")
        assert payloads[-1] == {
            "channel": "wholesale",
            "updates": [{"sku": "TEE", "available": 7, "version": 1}],
        }

        begin = time.monotonic()
        assert daemon.stop(signal.SIGTERM, timeout=STOP_WITHIN_S) == 0
        print(f"\nstopped in {time.monotonic() - begin:.2f} s")
        assert [e["event"] for e in daemon.events()][-2:] == ["valkey.stopped", "stopped"]
        assert daemon.event("stopping") is not None
        assert not pid_alive(server)
        assert "Traceback" not in daemon.stderr()

    # What was written is there for the next daemon (stopped with Ctrl-C this time).
    with Daemon(config, "run2", env=env) as again:
        again.wait_for("started")
        assert show(config, "TEE")["locations"]["wh-east"]["on_hand"] == 7
        server = valkey_pid(config)
        assert again.stop(signal.SIGINT, timeout=STOP_WITHIN_S) == 0
        assert not pid_alive(server)


def test_acknowledged_writes_survive_kill_9_of_the_daemon_and_its_server(config: Path) -> None:
    written = {("TEE", "wh-east"): 3, ("TEE", "wh-west"): 4, ("CAP", "store-sf"): 5}
    with Daemon(config) as daemon:
        daemon.wait_for("started")
        for n, (sku, location) in enumerate(list(written) * 2):
            qty = written[sku, location] + n
            ok(config, "stock", "set", sku, "--location", location, "--on-hand", str(qty))
            written[sku, location] = qty
        ok(config, "stock", "adjust", "CAP", "--location", "store-sf", "--delta", "-2")
        written["CAP", "store-sf"] -= 2

        server = valkey_pid(config)
        os.kill(server, signal.SIGKILL)
        os.kill(daemon.pid, signal.SIGKILL)
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=5) == -signal.SIGKILL
        wait_until(lambda: not pid_alive(server), 5, "the killed server to go")

    with Daemon(config, "run2") as again:
        again.wait_for("started")
        assert valkey_pid(config) != server  # a fresh server, replaying the append-only file
        for (sku, location), qty in written.items():
            assert show(config, sku)["locations"][location]["on_hand"] == qty
        assert again.stop() == 0


def test_a_new_daemon_adopts_the_server_a_killed_daemon_left_running(config: Path) -> None:
    with Daemon(config) as daemon:
        daemon.wait_for("started")
        on_hand(config, "TEE", "wh-east", 9)
        server = valkey_pid(config)
        daemon.kill()
        assert pid_alive(server), "SIGKILL of the daemon alone must not take the server down"

        with Daemon(config, "run2") as again:
            adopted = again.wait_for("valkey.using_running")
            assert adopted["pid"] == server
            again.wait_for("started")
            assert show(config, "TEE")["locations"]["wh-east"]["on_hand"] == 9
            assert again.stop() == 0
            assert not pid_alive(server)


def test_a_second_daemon_on_the_same_data_dir_is_refused(config: Path) -> None:
    with Daemon(config) as first:
        first.wait_for("started")
        server = valkey_pid(config)
        # Not `with Daemon(...)`: leaving that kills the data dir's server, the first's.
        second = Daemon(config, "second").start()
        try:
            assert second.proc is not None
            code = second.proc.wait(timeout=20)
            assert code != 0
            failed = second.event("daemon_failed")
            assert failed is not None, second.output()
            assert "another invsync daemon owns" in failed["error"]
            assert str(data_dir(config).resolve()) in failed["error"]
        finally:
            second.kill()
        # The first one is untouched and still serving.
        assert first.proc is not None and first.proc.poll() is None
        assert valkey_pid(config) == server
        assert on_hand(config, "TEE", "wh-east", 1)["version"] == 1
        assert first.stop() == 0


def test_a_broken_config_exits_2_without_starting_anything(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG.replace("buffer = 2", "buffer = -2"))
    with Daemon(config) as daemon:
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=20) == 2
        assert "channels[1].buffer" in daemon.stderr()
        assert daemon.events() == []
    assert not data_dir(config).exists()


PLACE_HOLD = """
import asyncio, sys
from invsync.engine.connection import open_redis
from invsync.engine.engine import Engine
from invsync.engine.models import Line

async def main(url: str, ttl: float) -> None:
    client = open_redis(url)
    try:
        async with Engine(client) as engine:
            line = Line(sku="TEE", qty=3, location="wh-east")
            await engine.place_hold("hold-evt-1", "cart-1", [line], ttl)
    finally:
        await client.aclose()

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def test_the_running_daemon_releases_lapsed_holds(config: Path) -> None:
    with Daemon(config) as daemon:
        daemon.wait_for("started")
        on_hand(config, "TEE", "wh-east", 10)
        subprocess.run(
            # Long enough that the CLI's own start on a loaded machine sees it still held.
            [sys.executable, "-c", PLACE_HOLD, socket_url(config), "6"],
            check=True,
            timeout=30,
        )
        held = show(config, "TEE")["locations"]["wh-east"]
        assert (held["reserved"], held["available"]) == (3, 7)

        def released() -> bool:
            return show(config, "TEE")["locations"]["wh-east"]["reserved"] == 0

        wait_until(released, 15, "the daemon to release the lapsed hold")
        assert show(config, "TEE")["locations"]["wh-east"]["available"] == 10
        assert daemon.wait_for("hold_expired")["hold"] == "cart-1"
        assert daemon.stop() == 0


def test_the_cli_reports_an_unusable_store_with_exit_1(tmp_path: Path) -> None:
    # A data dir that is a file: the store cannot start, and nothing is half done.
    config = write_config(tmp_path)
    data_dir(config).write_text("not a folder")
    done = invsync(
        config, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "1", "--direct"
    )
    assert done.returncode == 1
    assert "STORE_ERROR" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_operator_change_without_a_daemon_exits_1_and_names_direct(config: Path) -> None:
    for command in (
        ["stock", "set", "TEE", "--location", "wh-east", "--on-hand", "1"],
        ["stock", "adjust", "TEE", "--location", "wh-east", "--delta", "1"],
    ):
        done = invsync(config, *command)
        assert done.returncode == 1
        assert f"127.0.0.1:{server_port(config)} is not running" in done.stderr
        assert "--direct" in done.stderr
        assert "Traceback" not in done.stderr
    assert not data_dir(config).exists(), "nothing was written, no store was started"
