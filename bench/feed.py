"""``invsync bench feed``: websocket clients subscribed to ``WS /v1/feed`` while availability
changes at a fixed rate; deltas delivered per second, change->delivery latency, server RSS.

The server side (a ``FeedHub`` on the daemon's own ``HttpServer`` and app, fed by a publisher at
``rate`` changes/s) runs as its own process; the clients (real ``websockets`` connections on
loopback) run in this one, so neither side's CPU time hides in the other's.

Latency is measured from the moment each change was *due* on the publisher's schedule, not when
it happened to be published: the server's hub reads its clock through the injectable ``Clock``
and the publisher sets that clock to the scheduled time, so ``ts`` of every delta is its due
time and a publisher falling behind (an overloaded server) counts against the feed. Both
processes read the same wall clock. Latencies are binned at 0.1 ms (``ts`` itself is whole ms,
so figures may be up to 1 ms high).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from ..daemon.feed import BATCH_WINDOW_S
from ..daemon.loop import run_loop
from .reserve import process_rss_mb

T = TypeVar("T")

#: Latency histogram: 1 ms bins up to 60 s (the last bin collects anything slower).
_BINS = 60_000
_CHANNELS = ("web", "amazon", "ebay", "walmart")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used since boot (``/proc/stat``)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# --- the server process ------------------------------------------------------------------------


class _ScheduleClock:
    """The system clock, except that ``wall_ms`` is the publisher's scheduled time when set."""

    def __init__(self) -> None:
        self.stamp_ms: int | None = None

    def now(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        if self.stamp_ms is not None:
            return self.stamp_ms
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def _temporary_dir() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="invsync-bench-feed-") as folder:
        yield Path(folder)


class _BenchContext:
    """What ``build_app`` needs of a daemon when only the feed is used: a config whose data
    directory (where the API token is generated, as the daemon does) is ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        from ..core.config import Config, RedisConfig

        self.config = Config(redis=RedisConfig(data_dir=data_dir))


async def _serve(args: dict[str, Any]) -> None:
    from ..actors.messages import AvailabilityChanged
    from ..daemon.feed import FeedHub
    from ..daemon.http import build_app
    from ..daemon.security import client_token
    from ..daemon.server import HttpServer

    rate: float = args["rate"]
    seconds: float = args["seconds"]
    skus: int = args["skus"]
    channels = _CHANNELS[: args["channels"]]
    state: dict[tuple[str, str], tuple[int, int]] = {
        (f"SKU-{s:05d}", ch): (100, 1) for s in range(skus) for ch in channels
    }

    async def snapshot(want_skus: list[str], want_channels: list[str]) -> list[dict[str, Any]]:
        wanted_skus, wanted_channels = set(want_skus), set(want_channels)
        return [
            {"sku": sku, "channel": ch, "available": available, "version": version}
            for (sku, ch), (available, version) in state.items()
            if (not wanted_skus or sku in wanted_skus)
            and (not wanted_channels or ch in wanted_channels)
        ]

    if args["gc_gen0"]:
        gc.set_threshold(args["gc_gen0"], *gc.get_threshold()[1:])
    clock = _ScheduleClock()
    loop = asyncio.get_running_loop()
    async with (
        FeedHub(clock=clock, batch_window_s=args["window_s"]) as hub,
        _temporary_dir() as data_dir,
    ):
        context = _BenchContext(data_dir)
        app = build_app(context, routes=[hub.route(snapshot)])  # type: ignore[arg-type]
        token = client_token(context.config)  # the clients hold it, as real ones do
        async with HttpServer(app, "127.0.0.1", 0) as server:
            print(json.dumps({"port": server.port, "token": token}), flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if line.strip() != "go":
                return
            cpu0 = _cpu_s()
            total = int(rate * seconds)
            keys = list(state)
            lags: list[float] = []
            start = time.time() + 0.05
            sent = 0
            while sent < total:
                now = time.time()
                due_count = min(total, int((now - start) * rate) + 1)
                while sent < due_count:
                    due = start + sent / rate
                    lags.append(now - due)
                    key = keys[sent % len(keys)]
                    available, version = state[key]
                    state[key] = (available + 1, version + 1)
                    clock.stamp_ms = int(due * 1000)
                    hub.publish(
                        AvailabilityChanged(
                            sku=key[0], available=available + 1, version=version + 1
                        ),
                        key[1],
                    )
                    sent += 1
                clock.stamp_ms = None
                await asyncio.sleep(max(0.0, start + sent / rate - time.time()))
            publish_s = time.time() - start
            lags.sort()
            # Let the last frames go out before measuring what the server used.
            await asyncio.sleep(1.0)
            report = {
                "published": sent,
                "publish_s": round(publish_s, 3),
                "publish_lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))] * 1000, 2)
                if lags
                else 0.0,
                "server_cpu_s": round(_cpu_s() - cpu0, 2),
                "server_rss_mb": round(process_rss_mb(), 1),
                "server_peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
                "resyncs": hub.resyncs,
            }
            print(json.dumps(report), flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)  # "stop" or EOF


# --- the clients -------------------------------------------------------------------------------


class _Item(msgspec.Struct):
    type: str
    ts: int = 0


class _Frame(msgspec.Struct):
    type: str
    ts: int = 0
    messages: list[_Item] = []


class _Tally:
    """Deltas received and their latencies (a fixed-size histogram: memory does not grow)."""

    def __init__(self) -> None:
        self.hist = [0] * _BINS
        self.deltas = 0
        self.frames = 0
        self.resyncs = 0
        self.snapshots = 0
        self.expected: int | None = None
        self.complete = asyncio.Event()
        self._decode = msgspec.json.Decoder(_Frame).decode

    def expect(self, deltas: int) -> None:
        """Set ``complete`` once ``deltas`` have arrived."""
        self.expected = deltas
        self._check()

    def take(self, raw: bytes, now_ms: int) -> None:
        """Count one frame received at ``now_ms`` (ms since the epoch)."""
        frame = self._decode(raw)
        self.frames += 1
        match frame.type:
            case "availability":
                self._add([now_ms - frame.ts])
            case "batch":
                items = frame.messages
                self._add([now_ms - m.ts for m in items if m.type == "availability"])
                self.resyncs += sum(1 for m in items if m.type == "resync")
            case "resync":
                self.resyncs += 1
            case "snapshot":
                self.snapshots += 1
        self._check()

    def _add(self, latencies: list[int]) -> None:
        # The per-delta work is this loop alone: the clients' process must not be the limit.
        if latencies and (min(latencies) < 0 or max(latencies) >= _BINS):
            latencies = [min(max(x, 0), _BINS - 1) for x in latencies]
        hist = self.hist
        for x in latencies:
            hist[x] += 1
        self.deltas += len(latencies)

    def _check(self) -> None:
        if self.expected is not None and self.deltas >= self.expected:
            self.complete.set()

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in ms, nearest rank (1 ms bins)."""
        if not self.deltas:
            return 0.0
        rank = max(1, round(q * self.deltas))
        seen = 0
        for latency, count in enumerate(self.hist):
            seen += count
            if seen >= rank:
                return float(latency)
        return float(_BINS)


async def _client(
    url: str,
    tally: _Tally,
    *,
    batch: bool,
    compression: bool,
    ready: asyncio.Event,
    connected: list[int],
    token: str,
) -> None:
    from websockets.asyncio.client import connect

    async with connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        proxy=None,
        compression="deflate" if compression else None,
        max_size=None,
        ping_interval=None,
        open_timeout=60,
    ) as ws:
        await ws.send(json.dumps({"op": "subscribe", "skus": [], "channels": [], "batch": batch}))
        first = json.loads(await ws.recv())
        assert first["type"] == "snapshot", first["type"]
        connected.append(1)
        ready.set()
        while True:
            raw = await ws.recv(decode=False)  # bytes: no UTF-8 decoding needed
            tally.take(raw, time.time_ns() // 1_000_000)


async def run_feed_bench(
    *,
    clients: int = 1000,
    rate: float = 1000.0,
    seconds: float = 10.0,
    skus: int = 1000,
    channels: int = 4,
    batch: bool = True,
    compression: bool = False,
    window_s: float = BATCH_WINDOW_S,
    gc_gen0: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the server process, connect ``clients`` subscribers, publish for ``seconds``.

    ``gc_gen0`` sets the server process's first GC threshold (None: Python's default, as the
    daemon runs today). The clients' own process runs without the cyclic GC while measuring:
    they stand in for other machines, whose pauses are not the feed's.
    """
    say = click.echo if progress else (lambda *_a, **_k: None)
    _raise_fd_limit(clients + 256)
    args = {
        "rate": rate,
        "seconds": seconds,
        "skus": skus,
        "channels": min(channels, 4),
        "window_s": window_s,
        "gc_gen0": gc_gen0,
    }
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "invsync.bench.feed",
        json.dumps(args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    tally = _Tally()
    tasks: list[asyncio.Task[None]] = []
    try:
        hello = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        url = f"ws://127.0.0.1:{hello['port']}/v1/feed"
        say(
            f"server pid {proc.pid} on {url}; connecting {clients} clients "
            f"(batch={batch}, compression={compression}) ..."
        )
        connected: list[int] = []
        gate = asyncio.Semaphore(64)  # bounded connection storm

        async def one() -> None:
            ready = asyncio.Event()
            async with gate:
                task = asyncio.create_task(
                    _client(
                        url,
                        tally,
                        batch=batch,
                        compression=compression,
                        ready=ready,
                        connected=connected,
                        token=hello["token"],
                    )
                )
                tasks.append(task)
                waiter = asyncio.create_task(ready.wait())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if task.done():
                    task.result()  # a client that failed to subscribe fails the bench

        async with asyncio.TaskGroup() as group:
            for _ in range(clients):
                group.create_task(one())
        say(
            f"{len(connected)} clients subscribed; publishing {rate:g} changes/s for "
            f"{seconds:g} s ..."
        )
        gc.collect()
        gc.freeze()
        gc.disable()
        cpu0, busy0 = _cpu_s(), _machine_busy_s()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        report = json.loads(await asyncio.wait_for(proc.stdout.readline(), seconds + 120))
        client_cpu, busy = _cpu_s() - cpu0, _machine_busy_s() - busy0
        expected = report["published"] * clients
        tally.expect(expected)
        with contextlib.suppress(TimeoutError):  # the last frames may still be in flight
            await asyncio.wait_for(tally.complete.wait(), 5)
        server_rss = report["server_rss_mb"]
    finally:
        gc.enable()
        gc.unfreeze()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if proc.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(b"stop\n")
                await proc.stdin.drain()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    publish_s = report["publish_s"] or seconds
    figures = {
        "clients": clients,
        "deltas_per_s": round(tally.deltas / publish_s, 1),
        "p50_ms": tally.percentile(0.50),
        "p99_ms": tally.percentile(0.99),
        "max_ms": tally.percentile(1.0),
        "rss_mb": server_rss,
        "changes_per_s": round(report["published"] / publish_s, 1),
        "delivered": tally.deltas,
        "expected": expected,
        "frames": tally.frames,
        "resyncs": tally.resyncs,
        "publish_lag_p99_ms": report["publish_lag_p99_ms"],
        "server_cpu_s": report["server_cpu_s"],
        "client_cpu_s": round(client_cpu, 2),
        # What other processes took of the machine meanwhile (a busy machine inflates latency).
        "other_cpu_s": round(max(0.0, busy - client_cpu - report["server_cpu_s"]), 2),
        "server_peak_rss_mb": report["server_peak_rss_mb"],
        "batch": batch,
        "compression": compression,
        "window_ms": window_s * 1000,
        "gc_gen0": gc_gen0,
        "seconds": seconds,
        "rate": rate,
        "cpus": os.cpu_count(),
    }
    say(
        f"\nfeed: {figures['clients']} clients, {figures['changes_per_s']:,.0f} changes/s -> "
        f"{figures['deltas_per_s']:,.0f} deltas/s delivered "
        f"({tally.deltas:,} of {expected:,}, {tally.frames:,} frames, {tally.resyncs} resyncs)\n"
        f"latency change->delivery: p50 {figures['p50_ms']} ms   p99 {figures['p99_ms']} ms   "
        f"max {figures['max_ms']} ms\n"
        f"server: rss {server_rss} MiB, cpu {report['server_cpu_s']} s; clients cpu "
        f"{figures['client_cpu_s']} s; other processes {figures['other_cpu_s']} s "
        f"(over ~{publish_s + 1:g} s on {os.cpu_count()} cpus)"
    )
    return figures


if __name__ == "__main__":
    from ..daemon.logs import configure

    configure(level="warning", stream=sys.stderr)  # stdout carries the report
    run_loop(_serve(json.loads(sys.argv[1])))
