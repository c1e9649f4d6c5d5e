"""``invsync bench memory``: what a catalogue of N SKUs costs in the store and in the daemon.

The daemon runs as its own process (``invsync run``) on a copy of the shipped config.toml: the
embedded store in a throw-away data dir, every channel of the config against the channel
simulators (served in this process on a free port, listing the N SKUs as the sellers'
catalogue), the development credentials of deploy/run-dev.sh, the simulator's order traffic off.
It measures the store's ``used_memory`` and the daemon's RSS once ready (the baseline), imports
N generated SKUs through the API as ``invsync stock import`` does (``stock.counted`` events in
chunks of 1000, each chunk applied before the next), waits until every channel has pushed what
is pending (or ``settle_s`` passed: a slow channel such as EDI at 100 SKUs/s is still working
through a large catalogue then, which is the point), then measures again. Loopback only, bounded
in time.

Printed: store bytes/SKU and daemon RSS bytes/SKU (delta over the baseline, divided by N),
``MEMORY USAGE`` of one SKU's keys, the intake stream's length, what each channel still has
pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from ..daemon.client import DaemonClient
from ..daemon.config import load_config
from ..daemon.security import TOKEN_FILE, read_token_file
from ..engine import keys as k
from ..engine.embedded import SOCKET_NAME
from ..simulators.server import Simulator
from .reserve import process_rss_mb

#: The development credentials deploy/run-dev.sh gives the shipped config's channels (the
#: simulators accept exactly these); used unless the variables are already set.
DEV_ENV = {
    "INVSYNC_WHOLESALE_SECRET": "dev-wholesale-secret",
    "INVSYNC_WH_EAST_SECRET": "dev-wh-east-secret",
    "INVSYNC_SHOPIFY_TOKEN": "shpat_dev_token",
    "INVSYNC_SHOPIFY_SECRET": "dev-shopify-app-secret",
    "INVSYNC_AMAZON_REFRESH_TOKEN": "Atzr|dev-refresh-token",
    "INVSYNC_AMAZON_CLIENT_ID": "amzn1.application-oa2-client.dev",
    "INVSYNC_AMAZON_CLIENT_SECRET": "dev-amazon-client-secret",
    "INVSYNC_AMAZON_RELAY_SECRET": "dev-amazon-relay-secret",
    "INVSYNC_EBAY_TOKEN": "v^1.1#dev-refresh-token",
    "INVSYNC_EBAY_CLIENT_ID": "dev-ebay-app",
    "INVSYNC_EBAY_CLIENT_SECRET": "dev-ebay-cert",
    "INVSYNC_WALMART_CLIENT_ID": "dev-walmart-client",
    "INVSYNC_WALMART_CLIENT_SECRET": "dev-walmart-secret",
    "INVSYNC_WALMART_RELAY_SECRET": "dev-walmart-relay-secret",
    "INVSYNC_TIKTOK_TOKEN": "ROW_dev-access-token",
    "INVSYNC_TIKTOK_APP_SECRET": "dev-tiktok-app-secret",
    "INVSYNC_TIKTOK_REFRESH_TOKEN": "ROW_dev-refresh-token",
}

#: Rows per request, as ``invsync stock import`` sends them.
CHUNK = 1000
#: Quiet time after start-up before the baseline is taken (first full syncs of nothing).
BASELINE_WAIT_S = 3.0

_PENDING = re.compile(r'^invsync_channel_pending_skus\{channel="([^"]+)"\} (\S+)$', re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def shipped_config() -> Path:
    """The config.toml shipped at the package root."""
    return Path(__file__).resolve().parent.parent / "config.toml"


def _sub(text: str, pattern: str, new: str, what: str) -> str:
    out, n = re.subn(pattern, new, text, flags=re.M)
    if n == 0:
        raise ValueError(f"the config has no {what} to move for the benchmark")
    return out


def bench_config(source: Path, *, port: int, sim_port: int) -> str:
    """``source``'s text with the daemon on ``port``, the simulators (and every URL under their
    address) on ``sim_port`` and the simulator's order traffic off; relative paths (data_dir,
    the EDI folder) then resolve in the folder it is written to."""
    text = source.read_text()
    sim = re.search(r"^\[simulator\]\s*\n(?:.*\n)*?port = (\d+)", text, flags=re.M)
    if sim is None:
        raise ValueError(f"{source} has no [simulator] port")
    old = sim.group(1)
    text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{sim_port}")
    text = _sub(text, rf"^port = {old}$", f"port = {sim_port}", "[simulator] port")
    text = _sub(text, r"^(\[server\]\s*\n(?:.*\n)*?)port = \d+$", rf"\g<1>port = {port}", "port")
    return _sub(text, r"^orders_per_minute = .*$", "orders_per_minute = 0", "orders_per_minute")


def _pending(metrics: str) -> dict[str, int]:
    return {m.group(1): int(float(m.group(2))) for m in _PENDING.finditer(metrics)}


async def _used_memory(redis: aioredis.Redis) -> int:
    info: dict[str, Any] = await redis.info("memory")
    return int(info["used_memory"])


async def run_memory_bench(
    *,
    skus: int,
    settle_s: float = 60.0,
    source: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Import ``skus`` SKUs into a fresh daemon on the shipped config; measure store and RSS."""

    def say(text: str) -> None:
        if progress:
            print(text, file=sys.stderr, flush=True)

    source = source or shipped_config()
    port, sim_port = _free_port(), _free_port()
    for name, value in DEV_ENV.items():
        os.environ.setdefault(name, value)
    names = [f"MEM-{i:07d}" for i in range(skus)]
    digest = hashlib.sha256(f"bench-memory-{skus}".encode()).hexdigest()[:16]
    with tempfile.TemporaryDirectory(prefix="invsync-bench-memory-") as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(bench_config(source, port=port, sim_port=sim_port))
        config = load_config(path)
        base = f"http://127.0.0.1:{port}"
        sim = Simulator.from_config(config)
        sim.list_skus(names)
        log = (Path(tmp) / "daemon.log").open("wb")
        daemon: asyncio.subprocess.Process | None = None
        redis: aioredis.Redis | None = None
        try:
            async with sim, aiohttp.ClientSession() as http:
                exe = Path(sys.executable).parent / "invsync"
                daemon = await asyncio.create_subprocess_exec(
                    str(exe), "run", "-c", str(path), stdout=log, stderr=log, env=dict(os.environ)
                )
                for _ in range(600):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{base}/readyz") as resp:
                            if resp.status == 200:
                                break
                    if daemon.returncode is not None:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise RuntimeError("the daemon did not become ready within 60 s")
                if daemon.returncode is not None:
                    raise RuntimeError(f"the daemon exited {daemon.returncode} (see its log)")
                token = read_token_file(config.redis.data_dir / TOKEN_FILE)
                http.headers["Authorization"] = f"Bearer {token}"
                redis = aioredis.Redis(unix_socket_path=str(config.redis.data_dir / SOCKET_NAME))
                await asyncio.sleep(BASELINE_WAIT_S)
                store0, rss0 = await _used_memory(redis), process_rss_mb(daemon.pid)
                say(f"baseline: store {store0 / 2**20:.1f} MiB, daemon RSS {rss0:.1f} MiB")

                say(f"importing {skus:,} SKUs ({len(config.channels)} channels) ...")
                started = time.perf_counter()
                rss_peak = rss0
                async with DaemonClient.for_config(config) as client:
                    for start in range(0, skus, CHUNK):
                        events = [
                            {
                                "id": f"import-{digest}-{i + 2}",
                                "type": "stock.counted",
                                "location": config.locations[0].id,
                                "sku": names[i],
                                "on_hand": 1 + i % 50,
                            }
                            for i in range(start, min(skus, start + CHUNK))
                        ]
                        await client.post_events(events, wait=30.0)
                        if start % (50 * CHUNK) == 0:
                            rss_peak = max(rss_peak, process_rss_mb(daemon.pid))
                imported_s = time.perf_counter() - started
                say(f"imported in {imported_s:.1f} s; settling (at most {settle_s:g} s) ...")

                deadline = time.monotonic() + settle_s
                pending: dict[str, int] = {}
                while True:
                    async with http.get(f"{base}/metrics") as resp:
                        pending = _pending(await resp.text())
                    rss_peak = max(rss_peak, process_rss_mb(daemon.pid))
                    if (pending and not any(pending.values())) or time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(1.0)
                settled_s = time.perf_counter() - started - imported_s

                store1, rss1 = await _used_memory(redis), process_rss_mb(daemon.pid)
                one = names[0]
                marker = k.sku_event(one, f"import-{digest}-2")
                keys = {
                    "inv": k.inventory(one),
                    "hist": k.history(one),
                    "evt": marker,
                }
                usage = {
                    name: int(await redis.memory_usage(key, samples=0) or 0)
                    for name, key in keys.items()
                }
                pushed = {ch.id: int(await redis.hlen(k.pushed(ch.id))) for ch in config.channels}
                intake_len = int(await redis.xlen("intake:{events}"))
        finally:
            if redis is not None:
                await redis.aclose()
            if daemon is not None and daemon.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    daemon.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(daemon.wait(), 60)
                except TimeoutError:
                    daemon.kill()
                    await daemon.wait()
            log.close()
    figures: dict[str, Any] = {
        "skus": skus,
        "channels": len(config.channels),
        "store_bytes_per_sku": round((store1 - store0) / skus, 1),
        "daemon_rss_bytes_per_sku": round((rss1 - rss0) * 2**20 / skus, 1),
        "store_used_mb": round(store1 / 2**20, 1),
        "store_baseline_mb": round(store0 / 2**20, 1),
        "daemon_rss_mb": round(rss1, 1),
        "daemon_rss_baseline_mb": round(rss0, 1),
        "daemon_rss_peak_mb": round(rss_peak, 1),
        "one_sku_memory_usage": usage,
        "intake_entries": intake_len,
        "pushed": pushed,
        "pending": pending,
        "import_s": round(imported_s, 1),
        "settle_s": round(settled_s, 1),
    }
    return figures


def render(f: dict[str, Any]) -> str:
    """The figures as a few lines of text."""
    usage = ", ".join(f"{name} {n} B" for name, n in f["one_sku_memory_usage"].items())
    still = {ch: n for ch, n in f["pending"].items() if n}
    return "\n".join(
        [
            f"memory: {f['skus']:,} SKUs on {f['channels']} channels "
            f"(import {f['import_s']} s, then {f['settle_s']} s settling)",
            f"  store:  {f['store_bytes_per_sku']:,.0f} bytes/SKU "
            f"({f['store_baseline_mb']} -> {f['store_used_mb']} MiB used_memory)",
            f"  daemon: {f['daemon_rss_bytes_per_sku']:,.0f} bytes/SKU RSS "
            f"({f['daemon_rss_baseline_mb']} -> {f['daemon_rss_mb']} MiB, "
            f"peak {f['daemon_rss_peak_mb']} MiB)",
            f"  one SKU's keys (MEMORY USAGE): {usage}",
            f"  intake stream: {f['intake_entries']:,} entries; still pending: "
            + (", ".join(f"{ch} {n:,}" for ch, n in still.items()) or "none"),
        ]
    )
