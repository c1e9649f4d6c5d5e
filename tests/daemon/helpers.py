"""Helpers for tests that drive the real ``invsync`` console script as a subprocess.

Every test writes its own config into its ``tmp_path`` with ``data_dir = "data"``, so the embedded
Valkey of a test lives (and dies) in that folder, and with its own free ``[server] port`` (never
the default 8080: other suites' daemons run beside ours). ``Daemon`` kills whatever a failed test
left.
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
import tomllib
import urllib.error
import urllib.request
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

#: Three locations (the store keeps one unit back) and one channel per allocation rule. The
#: marketplaces have no url or credentials here: marked optional, the daemon starts without them
#: (``/readyz`` names them not ready) instead of refusing to start.
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
optional = true
options = { location_id = 1 }

[[channels]]
id = "amazon"
kind = "amazon"
optional = true
buffer = 2

[channels.options]
seller_id = "A1TEST"
marketplace_id = "ATVPDKIKX0DER"
client_id_env = "TEST_AMAZON_CLIENT_ID"
client_secret_env = "TEST_AMAZON_CLIENT_SECRET"

[[channels]]
id = "ebay"
kind = "ebay"
optional = true
percent = 50
cap = 20
options = { client_id_env = "TEST_EBAY_CLIENT_ID", client_secret_env = "TEST_EBAY_CLIENT_SECRET" }

[[channels]]
id = "walmart"
kind = "walmart"
optional = true
locations = ["wh-east", "wh-west"]
floor = 5

[channels.options]
client_id_env = "TEST_WALMART_CLIENT_ID"
client_secret_env = "TEST_WALMART_CLIENT_SECRET"

[[bundles]]
sku = "KIT"
components = { "TEE" = 1, "CAP" = 2 }
"""


def free_port() -> int:
    """A TCP port nobody listens on right now (on 127.0.0.1)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(folder: Path, text: str = CONFIG, *, port: int | None = None) -> Path:
    """``folder/config.toml`` holding ``text``; its store lives in ``folder/data``.

    Unless ``text`` has a ``[server]`` table, one is appended (at the end, so line numbers of
    ``text`` stay) with ``port``, or a free port.
    """
    path = folder / "config.toml"
    if "[server]" not in text:
        text += f'\n[server]\nhost = "127.0.0.1"\nport = {port or free_port()}\n'
    path.write_text(text)
    return path


def server_port(config: Path) -> int:
    """The ``[server] port`` of a config file."""
    port: int = tomllib.loads(config.read_text()).get("server", {}).get("port", 8080)
    return port


def base_url(config: Path) -> str:
    """``http://127.0.0.1:<port>`` of the daemon a config names."""
    return f"http://127.0.0.1:{server_port(config)}"


def api_token(config: Path) -> str:
    """The API token the daemon of ``config`` generated on its first start (as the CLI reads it:
    ``<data_dir>/api-token``)."""
    return (data_dir(config) / "api-token").read_text().strip()


def api_headers(config: Path) -> dict[str, str]:
    """What a real API client sends: the bearer token and, for bodies, the JSON content type."""
    return {"Authorization": f"Bearer {api_token(config)}", "Content-Type": "application/json"}


def http_get(config: Path, path: str, timeout: float = 5) -> tuple[int, bytes]:
    """``GET path`` on the daemon of ``config`` (blocking): (status, body); ``/v1`` paths carry
    the daemon's token."""
    headers = api_headers(config) if path.startswith("/v1") else {}
    request = urllib.request.Request(base_url(config) + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


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

    def __init__(self, config: Path, name: str = "run", env: dict[str, str] | None = None) -> None:
        self.config = config
        self.name = name
        self.env = env or {}
        self.stdout_path = config.parent / f"{name}.stdout"
        self.stderr_path = config.parent / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Spawn ``invsync run -c CONFIG`` (with ``env`` added to the environment)."""
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [INVSYNC, "run", "-c", str(self.config)],
                cwd=self.config.parent,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
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

    def output(self) -> str:
        """stdout and stderr so far, for failure messages and text checks."""
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def event(self, name: str, after: int = 0) -> dict[str, Any] | None:
        """The first logged event called ``name`` (from log line ``after`` on), or None."""
        return next((e for e in self.events()[after:] if e.get("event") == name), None)

    def wait_for(self, name: str, timeout: float = 20) -> dict[str, Any]:
        """Wait until the daemon logs event ``name``; fails early if the daemon exits."""
        deadline = time.monotonic() + timeout
        while (found := self._check(name, deadline, timeout)) is None:
            time.sleep(0.05)
        return found

    async def await_event(self, name: str, timeout: float = 20, after: int = 0) -> dict[str, Any]:
        """``wait_for`` without blocking the event loop; only log lines from index ``after`` on
        count (``len(daemon.events())`` taken before the action that should log it)."""
        import asyncio

        deadline = time.monotonic() + timeout
        while True:
            found = self._check(name, deadline, timeout, after)
            if found is not None:
                return found
            await asyncio.sleep(0.05)

    async def astop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """``stop`` without blocking the event loop."""
        import asyncio

        assert self.proc is not None
        self.proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                return code
            assert time.monotonic() < deadline, f"daemon still running {timeout} s after {sig}"
            await asyncio.sleep(0.05)

    def rss_mb(self) -> float:
        """The daemon's resident memory (VmRSS), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no VmRSS for pid {self.pid}")

    def _check(
        self, name: str, deadline: float, timeout: float, after: int = 0
    ) -> dict[str, Any] | None:
        assert self.proc is not None
        found = next((e for e in self.events()[after:] if e.get("event") == name), None)
        if found is not None:
            return found
        code = self.proc.poll()
        assert code is None, f"daemon exited {code} before {name!r}: {self.output()[-3000:]}"
        assert time.monotonic() < deadline, f"no {name!r} within {timeout} s: {self.events()}"
        return None

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


#: Three locations (the store keeps one unit back) and no channel: tests add their own.
LOCATIONS = """\
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
"""


def counted(event_id: str, sku: str, location: str, on_hand: int) -> dict[str, Any]:
    """A ``stock.counted`` event."""
    return {
        "id": event_id,
        "type": "stock.counted",
        "sku": sku,
        "location": location,
        "on_hand": on_hand,
    }


# --- async access to a running daemon (tests that also serve receivers on their event loop) ---


def webhook_channel(channel_id: str, url: str, secret_env: str, **settings: Any) -> str:
    """A ``[[channels]]`` block of kind ``webhook`` (settings as TOML values: str/int/list)."""
    lines = [
        "[[channels]]",
        f'id = "{channel_id}"',
        'kind = "webhook"',
        f'url = "{url}"',
        f'secret_env = "{secret_env}"',
    ]
    for key, value in settings.items():
        lines.append(f"{key} = {_toml(value)}")
    return "\n" + "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


async def poll(check: Any, timeout: float, what: str, step: float = 0.05) -> Any:
    """Await ``check()`` (sync or async) until it returns a truthy value, which is returned;
    fail naming ``what`` after ``timeout`` seconds."""
    import asyncio
    import inspect

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(step)


class Api:
    """The daemon's HTTP API over real loopback HTTP (aiohttp), as an async context manager.

    ``/v1`` requests carry the token the daemon generated in its data directory (read when first
    needed: the daemon writes it before it listens) and ``Content-Type: application/json``.
    """

    def __init__(self, config: Path) -> None:
        self.config = config
        self.base = base_url(config)
        self.session: Any = None

    async def __aenter__(self) -> Self:
        import aiohttp

        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """(status, decoded JSON body or text); ``body`` bytes are sent as is, else as JSON."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        if path.startswith("/v1"):
            headers = {**api_headers(self.config), **(headers or {})}
        async with self.session.request(
            method, self.base + path, data=data, headers=headers
        ) as resp:
            raw = await resp.read()
            try:
                return resp.status, json.loads(raw)
            except ValueError:
                return resp.status, raw.decode()

    async def post_events(self, events: Any, wait: float | None = None) -> dict[str, Any]:
        """``POST /v1/events`` that must be accepted (202)."""
        path = "/v1/events" + (f"?wait={wait:g}" if wait is not None else "")
        status, body = await self.request("POST", path, events)
        assert status == 202, (status, body)
        answer: dict[str, Any] = body
        return answer

    async def stock(self, sku: str) -> dict[str, Any] | None:
        status, body = await self.request("GET", f"/v1/stock/{sku}")
        if status == 404:
            return None
        assert status == 200, (status, body)
        view: dict[str, Any] = body
        return view

    async def order(self, channel: str, order_id: str) -> dict[str, Any] | None:
        status, body = await self.request("GET", f"/v1/orders/{channel}/{order_id}")
        if status == 404:
            return None
        assert status == 200, (status, body)
        view: dict[str, Any] = body
        return view

    async def metrics(self) -> str:
        status, body = await self.request("GET", "/metrics")
        assert status == 200
        return str(body)

    async def readyz(self) -> dict[str, Any]:
        _, body = await self.request("GET", "/readyz")
        report: dict[str, Any] = body
        return report
