"""Helpers for tests that drive the real ``invsync`` console script as a subprocess.

Every test writes its own config into its ``tmp_path`` with ``data_dir = "data"``, so the embedded
Valkey of a test lives (and dies) in that folder; ``cleanup`` kills whatever a failed test left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[2]


def _script() -> str:
    beside = Path(sys.executable).parent / "invsync"
    if beside.exists():
        return str(beside)
    found = shutil.which("invsync")
    assert found, "the invsync console script is not installed (make install)"
    return found


INVSYNC = _script()

#: Three locations (the store keeps one unit back) and one channel per allocation rule.
CONFIG = """\
[redis]
data_dir = "data"

[[locations]]
id = "wh-east"
priority = 10

[[locations]]
id = "wh-west"
priority = 20

[[locations]]
id = "store-sf"
kind = "store"
priority = 50
safety_stock = 1

[[channels]]
id = "web"
kind = "shopify"

[[channels]]
id = "amazon"
kind = "amazon"
buffer = 2

[[channels]]
id = "ebay"
kind = "ebay"
percent = 50
cap = 20

[[channels]]
id = "walmart"
kind = "walmart"
locations = ["wh-east", "wh-west"]
floor = 5

[[bundles]]
sku = "KIT"
components = { "TEE" = 1, "CAP" = 2 }
"""


def write_config(folder: Path, text: str = CONFIG) -> Path:
    """``folder/config.toml`` holding ``text``; its store lives in ``folder/data``."""
    path = folder / "config.toml"
    path.write_text(text)
    return path


def data_dir(config: Path) -> Path:
    """The embedded store's folder of a config written by ``write_config``."""
    return config.parent / "data"


def invsync(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``invsync ARGS -c CONFIG`` from the config's folder; never raises on a non-zero exit."""
    return subprocess.run(
        [INVSYNC, *args, "-c", str(config)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(config: Path, *args: str) -> str:
    """Run a command that must succeed; its stdout."""
    done = invsync(config, *args)
    assert done.returncode == 0, f"{args} exited {done.returncode}: {done.stderr}"
    return done.stdout


def show(config: Path, sku: str) -> dict[str, Any]:
    """``stock show SKU --json``, parsed."""
    view: dict[str, Any] = json.loads(ok(config, "stock", "show", sku, "--json"))
    return view


def on_hand(config: Path, sku: str, location: str, qty: int, *more: str) -> dict[str, Any]:
    """``stock set SKU --location L --on-hand N``, then the SKU's view."""
    ok(config, "stock", "set", sku, "--location", location, "--on-hand", str(qty), *more)
    return show(config, sku)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie is gone (PID 1 here does not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def valkey_pid(config: Path) -> int:
    """The pid the embedded server wrote to ``data/valkey.pid``."""
    return int((data_dir(config) / "valkey.pid").read_text().strip())


def socket_url(config: Path) -> str:
    """The ``unix://`` URL of the config's embedded server."""
    return "unix://" + str((data_dir(config) / "valkey.sock").resolve())


def kill_valkey(config: Path) -> None:
    """SIGKILL the embedded server of ``config`` if one runs (checked by its command line)."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = valkey_pid(config)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if pid_alive(pid) and str(data_dir(config).resolve()).encode() in cmdline:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), 5, f"valkey {pid} to die")


class Daemon:
    """``invsync run`` as a subprocess; stdout (JSON log lines) and stderr go to files.

    As a context manager it is SIGKILLed on exit if still running, and so is its Valkey server.
    """

    def __init__(self, config: Path, name: str = "run") -> None:
        self.config = config
        self.stdout_path = config.parent / f"{name}.stdout"
        self.stderr_path = config.parent / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Spawn ``invsync run -c CONFIG``."""
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [INVSYNC, "run", "-c", str(self.config)],
                cwd=self.config.parent,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
        kill_valkey(self.config)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line written to stdout so far."""
        out = []
        for line in self.stdout_path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def event(self, name: str) -> dict[str, Any] | None:
        """The first logged event called ``name``, or None."""
        return next((e for e in self.events() if e.get("event") == name), None)

    def wait_for(self, name: str, timeout: float = 20) -> dict[str, Any]:
        """Wait until the daemon logs event ``name``; fails early if the daemon exits."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while (found := self.event(name)) is None:
            code = self.proc.poll()
            assert code is None, f"daemon exited {code} before {name!r}: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {name!r} within {timeout} s: {self.events()}"
            time.sleep(0.05)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send ``sig`` and wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the daemon (only) if it still runs, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
