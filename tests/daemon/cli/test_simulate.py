"""``invsync simulate --catalogue``: the simulators list a stock file's SKUs at start.

The command runs as a real process on a free port; the test reads what it lists through the
simulator's own control route.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.daemon.helpers import INVSYNC, free_port, write_config

CATALOGUE = """\
sku,location,on_hand
TEE-BLK-M,wh-east,40
TEE-BLK-M,wh-west,25
MUG,store-sf,3
"""


def _config(folder: Path, port: int) -> Path:
    text = f"""\
[redis]
data_dir = "data"

[[locations]]
id = "wh-east"

[[locations]]
id = "wh-west"

[[locations]]
id = "store-sf"

[[channels]]
id = "wholesale"
kind = "webhook"
url = "http://127.0.0.1:{port}/webhooks/wholesale"
secret_env = "SIMTEST_WHOLESALE_SECRET"

[[channels]]
id = "partner"
kind = "webhook"
url = "http://127.0.0.1:{port}/webhooks/partner"
secret_env = "SIMTEST_WHOLESALE_SECRET"

[[bundles]]
sku = "KIT"
components = {{ "TEE-BLK-M" = 1, "MUG" = 1 }}

[simulator]
port = {port}
"""
    return write_config(folder, text)


def _env() -> dict[str, str]:
    return {**os.environ, "SIMTEST_WHOLESALE_SECRET": "s3cret"}


def test_the_catalogue_and_bundles_are_listed_on_every_channel_at_start(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, port)
    stock = tmp_path / "stock.csv"
    stock.write_text(CATALOGUE)
    more = tmp_path / "more.csv"  # --catalogue repeats: every file's SKUs are listed
    more.write_text(CATALOGUE.splitlines()[0] + "\nZED,wh-east,1\nMUG,wh-east,2\n")
    proc = subprocess.Popen(
        [INVSYNC, "simulate", "-c", str(config), "--catalogue", str(stock), "--catalogue",
         str(more)],
        env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        state = None
        while state is None:
            assert proc.poll() is None, proc.communicate()[1].decode()
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_sim/channels", timeout=1
                ) as resp:
                    state = json.loads(resp.read())
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "the simulator never answered"
                time.sleep(0.1)
        listed = {c["id"]: c["listed"] for c in state["channels"]}
        # The files' SKUs and the config's bundle, each once, on every channel.
        expected = ["KIT", "MUG", "TEE-BLK-M", "ZED"]
        assert listed == {"wholesale": expected, "partner": expected}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_a_bad_catalogue_is_refused_with_the_line_and_nothing_starts(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, port)
    stock = tmp_path / "stock.csv"
    stock.write_text("sku,location,on_hand\nTEE,wh-east,4\nMUG,moon-base,1\n")
    done = subprocess.run(
        [INVSYNC, "simulate", "-c", str(config), "--catalogue", str(stock)],
        env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "--catalogue" in done.stderr and "line 3" in done.stderr, done.stderr
    assert "moon-base" in done.stderr
