"""``invsync bench propagate``: events/s through intake -> engine -> SKU actor -> channel actor
-> acknowledgement by a local zero-latency webhook receiver, with event->ack latency and RSS.

The daemon runs as its own process (``invsync run`` on a throw-away config and data dir), so the
load generator and the receiver (both in this process) do not share its CPU time slice. Every
event is a ``stock.counted`` whose on_hand is the SKU's next count, and every channel shows
on_hand as is, so the receiver can tell which event each acknowledged value came from: the
latency of an event is from its 202 to the first acknowledgement of its value on a channel.
Values superseded before they were pushed (coalescing) have no acknowledgement and no latency.

Besides latency, each run reports the CPU time the daemon process used while the events were
offered and drained (``/proc/<pid>/stat``), as ``daemon_cpu_ms_per_event``: CPU time does not
depend on what else the machine runs the way latency does, and ``1000 /`` it is the events per
second one core can carry (the sizing rule in docs/operations.md).

``--find-max`` (``find_max_rate``) searches the highest offered rate that holds p99 < 100 ms
with every event delivered (every request accepted, the offered rate kept, every channel
converged): it doubles the rate from ``start`` until a run fails, then bisects between the
last rate that held and the first that did not, within a time budget, on one daemon seeded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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


#: What a rate must hold to pass ``find_max_rate``: p99 event->ack latency below this (seconds).
P99_LIMIT_S = 0.100
#: ... and at least this share of the offered rate actually sent (the load generator kept up).
KEPT_RATE = 0.95


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in seconds; 0 if unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 onwards
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Session:
    """A daemon on a throw-away config with ``channels`` webhook channels pointing at this
    process's receiver, seeded with ``skus`` SKUs; ``run`` offers one rate to it."""

    def __init__(
        self, *, skus: int, channels: int, batch: int, say: Any, daemon: Path | None = None
    ) -> None:
        self.skus, self.channels, self.batch, self.say = skus, channels, batch, say
        #: The ``invsync`` executable to run (None: the one installed beside this Python).
        self.exe = daemon or Path(sys.executable).parent / "invsync"
        self.receiver = Receiver()
        self.counts = dict.fromkeys(range(skus), 1)
        self.next_sku = 0
        self.daemon: asyncio.subprocess.Process | None = None
        self.http: aiohttp.ClientSession | None = None
        self.base = ""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[_Session]:
        app = web.Application()
        app.router.add_post("/hook/{channel}", self.receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        receiver_port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        try:
            with tempfile.TemporaryDirectory(prefix="invsync-bench-") as tmp:
                config = Path(tmp) / "config.toml"
                config.write_text(_config(port, receiver_port, Path(tmp) / "data", self.channels))
                env = {**os.environ, "INVSYNC_BENCH_SECRET": SECRET}
                self.daemon = await asyncio.create_subprocess_exec(
                    str(self.exe), "run", "-c", str(config),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
                )
                try:
                    async with aiohttp.ClientSession() as http:
                        self.http = http
                        await self._ready(Path(tmp) / "data")
                        await self._seed()
                        yield self
                finally:
                    await self._stop()
        finally:
            await runner.cleanup()

    async def _ready(self, data: Path) -> None:
        assert self.http is not None
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(f"{self.base}/readyz") as resp:
                    if resp.status == 200:
                        break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the daemon did not become ready")
        # The daemon's API token, where it generated it (as the CLI finds it); a build from
        # before API tokens (``--daemon`` of an older commit) has none.
        if (data / TOKEN_FILE).exists():
            token = read_token_file(data / TOKEN_FILE)
            self.http.headers["Authorization"] = f"Bearer {token}"

    async def _seed(self) -> None:
        assert self.http is not None
        self.say(f"seeding {self.skus} SKUs on {self.channels} channels ...")
        for start in range(0, self.skus, 1000):
            events = [
                {"id": f"seed-{s}", "type": "stock.counted", "sku": f"SKU-{s}",
                 "location": "wh-1", "on_hand": 1}
                for s in range(start, min(self.skus, start + 1000))
            ]
            async with self.http.post(f"{self.base}/v1/events", json=events) as resp:
                assert resp.status == 202, await resp.text()
        expected = self.skus * self.channels
        deadline = time.monotonic() + 120
        while len(self.receiver.latest) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # the receiver's state is polled: no event to wait on

    async def _stop(self) -> None:
        daemon, self.daemon = self.daemon, None
        if daemon is None:
            return
        with contextlib.suppress(ProcessLookupError):
            daemon.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(daemon.wait(), 30)
        except TimeoutError:
            daemon.kill()
            await daemon.wait()

    def _converged(self) -> bool:
        latest, channels = self.receiver.latest, self.channels
        return all(latest.get((f"ch{c}", f"SKU-{s}")) == n
                   for s, n in self.counts.items() for c in range(channels))

    async def run(self, rate: float, seconds: float) -> dict[str, Any]:
        """Offer ``rate`` events/s for ``seconds``, wait until every channel shows every SKU's
        last value (at most 60 s); the figures of this run alone."""
        assert self.http is not None and self.daemon is not None
        http, base, batch, pid = self.http, self.base, self.batch, self.daemon.pid
        self.say(f"driving {rate:.0f} events/s for {seconds:g} s ({batch} events per request) ...")
        sent: dict[tuple[str, int], float] = {}
        total = int(rate * seconds)
        requests = (total + batch - 1) // batch
        failures = 0
        rss_peak = 0.0
        cpu0 = process_cpu_s(pid)
        start_t = time.perf_counter()

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
                delay = start_t + r * batch / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                events, keys = [], []
                for _ in range(min(batch, total - r * batch)):
                    s = self.next_sku % self.skus
                    self.next_sku += 1
                    self.counts[s] += 1
                    sku = f"SKU-{s}"
                    events.append({"id": f"e{s}-{self.counts[s]}", "type": "stock.counted",
                                   "sku": sku, "location": "wh-1", "on_hand": self.counts[s]})
                    keys.append((sku, self.counts[s]))
                group.create_task(post(events, keys))
                if r % 50 == 0:
                    rss_peak = max(rss_peak, process_rss_mb(pid))
        elapsed = time.perf_counter() - start_t
        # Wait until every SKU's final value reached every channel.
        deadline = time.monotonic() + 60
        while not self._converged() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # the receiver's state is polled: no event to wait on
        converged = self._converged()
        cpu = process_cpu_s(pid) - cpu0
        rss_peak = max(rss_peak, process_rss_mb(pid))
        seen, channels = self.receiver.seen, self.channels
        latencies = sorted(
            seen[(f"ch{c}", sku, n)] - t
            for (sku, n), t in sent.items()
            for c in range(channels)
            if (f"ch{c}", sku, n) in seen
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
            "skus": self.skus,
            "converged": converged,
            "daemon_cpu_s": round(cpu, 2),
            "daemon_cpu_ms_per_event": round(1000 * cpu / len(sent), 3) if sent else None,
        }
        self.say(
            f"propagate: {figures['events_per_s']:,.0f} events/s accepted, event->ack p50 "
            f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms over {len(latencies)} acks on "
            f"{channels} channels; daemon RSS {figures['rss_mb']} MiB, CPU "
            f"{figures['daemon_cpu_ms_per_event']} ms/event; converged: {converged}"
        )
        return figures


def holds(figures: dict[str, Any]) -> bool:
    """Whether a run held: p99 < 100 ms, the offered rate kept, every event delivered."""
    return bool(
        figures["converged"]
        and figures["failed_requests"] == 0
        and figures["events"] > 0
        and figures["events_per_s"] >= KEPT_RATE * figures["target_rate"]
        and figures["p99_ms"] < P99_LIMIT_S * 1000
    )


async def run_propagate_bench(
    *,
    rate: float,
    seconds: float,
    skus: int,
    channels: int,
    batch: int,
    progress: bool = True,
    daemon: Path | None = None,
) -> dict[str, Any]:
    """Drive ``rate`` events/s for ``seconds`` into a fresh daemon (``daemon``: the ``invsync``
    executable to run, default this one); measure what reaches the channels."""
    say = _say(progress)
    session = _Session(skus=skus, channels=channels, batch=batch, say=say, daemon=daemon)
    async with session.running():
        return await session.run(rate, seconds)


async def search_max_rate(
    run: Callable[[float], Awaitable[dict[str, Any]]],
    *,
    start: float,
    budget_s: float,
    precision: float = 0.1,
    pause_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[float, float | None, dict[str, Any] | None, list[dict[str, Any]]]:
    """Search the highest rate ``run(rate)`` ``holds`` at: double from ``start`` while runs
    hold (halve while they fail), then bisect between the highest rate that held and the lowest
    that failed until they are within ``precision`` (relative to the former). No run starts
    after ``budget_s`` seconds of ``clock``. Returns (highest rate that held or 0, lowest that
    failed or None, the figures of the run at the first, every run's figures in order)."""
    began = clock()
    runs: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    low, high = 0.0, math.inf
    rate = start
    while clock() - began < budget_s and rate >= 1:
        figures = await run(rate)
        figures["held"] = holds(figures)
        runs.append(figures)
        if figures["held"]:
            low, best = rate, figures
        else:
            high = rate
        if high - low <= precision * max(low, 1.0):
            break
        if math.isinf(high):
            rate *= 2
        elif low == 0:
            rate = high / 2
        else:
            rate = (low + high) / 2
        if pause_s:
            await asyncio.sleep(pause_s)  # let the daemon settle after a run
    return low, None if math.isinf(high) else high, best, runs


async def find_max_rate(
    *,
    start: float,
    seconds: float,
    skus: int,
    channels: int,
    batch: int,
    budget_s: float = 300.0,
    precision: float = 0.1,
    progress: bool = True,
    daemon: Path | None = None,
) -> dict[str, Any]:
    """The highest offered rate (events/s) that ``holds`` (``search_max_rate``), each run
    ``seconds`` long, on one daemon seeded once. Returns the best run's figures under ``max``,
    and every run under ``runs``."""
    say = _say(progress)
    session = _Session(skus=skus, channels=channels, batch=batch, say=say, daemon=daemon)
    began = time.monotonic()
    async with session.running():
        low, high, best, runs = await search_max_rate(
            lambda rate: session.run(rate, seconds),
            start=start,
            budget_s=budget_s,
            precision=precision,
        )
    limit = P99_LIMIT_S * 1000
    result: dict[str, Any] = {
        "max_rate": low,
        "first_failing_rate": high,
        "p50_ms": best["p50_ms"] if best else None,
        "p99_ms": best["p99_ms"] if best else None,
        "daemon_cpu_ms_per_event": best["daemon_cpu_ms_per_event"] if best else None,
        "max": best,
        "runs": runs,
        "searched_s": round(time.monotonic() - began, 1),
        "p99_limit_ms": limit,
        "channels": channels,
        "skus": skus,
        "cpus": os.cpu_count(),
    }
    if best is None:
        say(f"\nfind-max: no rate held p99 < {limit:g} ms ({len(runs)} runs)")
    else:
        say(
            f"\nfind-max: {low:,.0f} events/s held p99 < {limit:g} ms with every event "
            f"delivered (p50 {best['p50_ms']} ms, p99 {best['p99_ms']} ms; first failing rate "
            f"{'none found' if high is None else f'{high:,.0f}'}; {len(runs)} runs in "
            f"{result['searched_s']} s); daemon CPU {best['daemon_cpu_ms_per_event']} ms/event"
        )
    return result


def _say(progress: bool) -> Any:
    def say(text: str) -> None:
        if progress:
            print(text, file=sys.stderr, flush=True)

    return say
