"""``invsync bench propagate``: events/s through intake -> engine -> SKU actor -> channel actor
-> acknowledgement by a local zero-latency webhook receiver, with event->ack latency and RSS.

The daemon runs as its own process (``invsync run`` on a throw-away config and data dir), so the
load generator and the receiver (both in this process) do not share its CPU time slice. Every
event is a ``stock.counted`` whose on_hand is the SKU's next count, and every channel shows
on_hand as is, so the receiver can tell which event each acknowledged value came from: the
latency of an event is from its 202 to the first acknowledgement of its value on a channel.
Values superseded before they were pushed (coalescing) have no acknowledgement and no latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ..daemon.security import TOKEN_FILE, read_token_file
from .reserve import percentile, process_rss_mb

SECRET = "bench-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver:
    """A zero-latency webhook receiver: acknowledges every push and records when it came."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, int], float] = {}  # (channel, sku, value) -> first ack
        self.latest: dict[tuple[str, str], int] = {}
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.perf_counter()
        doc = json.loads(body)
        channel = doc["channel"]
        self.requests += 1
        for update in doc["updates"]:
            key = (channel, update["sku"], update["available"])
            self.seen.setdefault(key, now)
            self.latest[(channel, update["sku"])] = update["available"]
        return web.Response(status=204)


def _config(port: int, receiver_port: int, data: Path, channels: int) -> str:
    blocks = "\n".join(
        f"""
[[channels]]
id = "ch{i}"
kind = "webhook"
url = "http://127.0.0.1:{receiver_port}/hook/ch{i}"
secret_env = "INVSYNC_BENCH_SECRET"
rate_limit_per_s = 1000
burst = 200
batch_size = 200
"""
        for i in range(channels)
    )
    return f"""
[redis]
data_dir = "{data}"

[server]
host = "127.0.0.1"
port = {port}

[[locations]]
id = "wh-1"
{blocks}
"""


async def run_propagate_bench(
    *,
    rate: float,
    seconds: float,
    skus: int,
    channels: int,
    batch: int,
    progress: bool = True,
) -> dict[str, Any]:
    """Drive ``rate`` events/s for ``seconds`` into a fresh daemon; measure what reaches the
    channels."""

    def say(text: str) -> None:
        if progress:
            print(text, file=sys.stderr, flush=True)

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{channel}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    receiver_port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", receiver_port)
    await site.start()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="invsync-bench-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(_config(port, receiver_port, Path(tmp) / "data", channels))
        env = {**os.environ, "INVSYNC_BENCH_SECRET": SECRET}
        exe = Path(sys.executable).parent / "invsync"
        daemon = await asyncio.create_subprocess_exec(
            str(exe), "run", "-c", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
        )
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(200):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{base}/readyz") as resp:
                            if resp.status == 200:
                                break
                    await asyncio.sleep(0.05)
                else:
                    raise RuntimeError("the daemon did not become ready")
                # The daemon's API token, where it generated it (as the CLI finds it).
                token = read_token_file(Path(tmp) / "data" / TOKEN_FILE)
                http.headers["Authorization"] = f"Bearer {token}"
                say(f"seeding {skus} SKUs on {channels} channels ...")
                counts = dict.fromkeys(range(skus), 1)
                for start in range(0, skus, 1000):
                    events = [
                        {"id": f"seed-{s}", "type": "stock.counted", "sku": f"SKU-{s}",
                         "location": "wh-1", "on_hand": 1}
                        for s in range(start, min(skus, start + 1000))
                    ]
                    async with http.post(f"{base}/v1/events", json=events) as resp:
                        assert resp.status == 202, await resp.text()
                expected = skus * channels
                deadline = time.monotonic() + 120
                while len(receiver.latest) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)  # the receiver's state is polled: no event to wait on
                say(f"driving {rate:.0f} events/s for {seconds:.0f} s "
                    f"({batch} events per request) ...")
                sent: dict[tuple[str, int], float] = {}
                total = int(rate * seconds)
                requests = (total + batch - 1) // batch
                start_t = time.perf_counter()
                rss_peak = 0.0
                next_sku = 0
                failures = 0

                async def post(events: list[dict[str, Any]], keys: list[tuple[str, int]]) -> None:
                    nonlocal failures
                    try:
                        async with http.post(f"{base}/v1/events", json=events) as resp:
                            if resp.status != 202:
                                failures += 1
                                return
                    except aiohttp.ClientError:
                        failures += 1
                        return
                    now = time.perf_counter()
                    for key in keys:
                        sent[key] = now

                async with asyncio.TaskGroup() as group:
                    for r in range(requests):
                        due = start_t + r * batch / rate
                        delay = due - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        events, keys = [], []
                        for _ in range(min(batch, total - r * batch)):
                            s = next_sku % skus
                            next_sku += 1
                            counts[s] += 1
                            sku = f"SKU-{s}"
                            events.append({"id": f"e{s}-{counts[s]}", "type": "stock.counted",
                                           "sku": sku, "location": "wh-1",
                                           "on_hand": counts[s]})
                            keys.append((sku, counts[s]))
                        group.create_task(post(events, keys))
                        if r % 50 == 0:
                            rss_peak = max(rss_peak, process_rss_mb(daemon.pid))
                elapsed = time.perf_counter() - start_t
                # Wait until every SKU's final value reached every channel.
                deadline = time.monotonic() + 60
                final = {f"SKU-{s}": n for s, n in counts.items()}
                while time.monotonic() < deadline:
                    if all(receiver.latest.get((f"ch{c}", sku)) == n
                           for sku, n in final.items() for c in range(channels)):
                        break
                    await asyncio.sleep(0.1)
                converged = all(receiver.latest.get((f"ch{c}", sku)) == n
                                for sku, n in final.items() for c in range(channels))
                rss_peak = max(rss_peak, process_rss_mb(daemon.pid))
        finally:
            with contextlib.suppress(ProcessLookupError):
                daemon.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(daemon.wait(), 30)
            except TimeoutError:
                daemon.kill()
                await daemon.wait()
            await runner.cleanup()
    latencies = sorted(
        receiver.seen[(f"ch{c}", sku, n)] - t
        for (sku, n), t in sent.items()
        for c in range(channels)
        if (f"ch{c}", sku, n) in receiver.seen
    )
    figures = {
        "events_per_s": round(len(sent) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "rss_mb": round(rss_peak, 1),
        "target_rate": rate,
        "events": len(sent),
        "failed_requests": failures,
        "acks_measured": len(latencies),
        "channels": channels,
        "skus": skus,
        "converged": converged,
    }
    say(
        f"\npropagate: {figures['events_per_s']:,.0f} events/s accepted, event->ack p50 "
        f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms over {len(latencies)} acks on "
        f"{channels} channels; daemon RSS {figures['rss_mb']} MiB; converged: {converged}"
    )
    return figures
