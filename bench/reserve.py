"""``invsync bench``: throughput, latency percentiles and memory, printed (or as JSON).

``reserve`` measures single-line reservations per second through the engine (the Python API, its
validation, the auto-batching pipeline and the Lua script) on a fresh embedded Valkey with AOF
on, and in the same run the server's ceiling for the same script without Python in the loop
(``redis-benchmark`` EVALSHA when installed, else a pipelined raw loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..daemon.cli import progress as bars
from ..engine import keys
from ..engine.connection import open_redis
from ..engine.embedded import EmbeddedValkey
from ..engine.engine import Engine
from ..engine.models import Line

LOCATION = "wh-bench"
CHANNEL = "bench"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest-rank."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


def process_rss_mb(pid: int | str = "self") -> float:
    """Current resident memory of a process (``self`` by default), in MiB; 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb() -> float:
    """Peak resident memory of this process, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _reserve_load(
    engine: Engine,
    *,
    ops: int,
    concurrency: int,
    skus: int,
    rate: float | None,
    tag: str,
    bar: str | None = None,
) -> tuple[float, list[float]]:
    """Run ``ops`` reservations from ``concurrency`` callers; returns (seconds, latencies in s).
    ``bar``: the description of a progress bar on a terminal (polled, off the measured path)."""
    latencies: list[float] = []
    counter = iter(range(ops))
    start = time.perf_counter()

    async def caller() -> None:
        for i in counter:
            if rate is not None:
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            t0 = time.perf_counter()
            await engine.reserve(
                f"e{i}",
                CHANNEL,
                f"{tag}{i}",
                [Line(sku=f"SKU-{i % skus}", qty=1, location=LOCATION)],
            )
            latencies.append(time.perf_counter() - t0)

    watching = (
        bars.polled(bar, ops, latencies.__len__) if bar else contextlib.nullcontext()
    )
    async with watching, asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(caller())
    return time.perf_counter() - start, latencies


async def _ceiling_redis_benchmark(
    exe: str, socket_path: Path, sha: str, now_ms: int, n: int
) -> float | None:
    """Ops/s of the reserve script driven by redis-benchmark (50 clients, pipeline 16)."""
    args_json = json.dumps(
        {
            "skus": ["SKU-0"],
            "channel": CHANNEL,
            "order_id": "rb",
            "lines": [{"sku": "SKU-0", "location": LOCATION, "qty": 1}],
        },
        separators=(",", ":"),
    )
    proc = await asyncio.create_subprocess_exec(
        exe,
        "-s",
        str(socket_path),
        "-n",
        str(n),
        "-c",
        "50",
        "-P",
        "16",
        "-r",
        "1000000000",
        "-q",
        "EVALSHA",
        sha,
        "3",
        "evt:{rb/__rand_int__}:e",
        "ord:{rb/__rand_int__}",
        keys.inventory("SKU-0"),
        args_json,
        "259200000",
        str(now_ms),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    found = re.findall(r"([\d.]+) requests per second", text)
    return float(found[-1]) if proc.returncode == 0 and found else None


async def _ceiling_pipelined(engine: Engine, now_ms: int, n: int) -> float:
    """Ops/s of the reserve script in raw pipelines of 1,000 (no Outcome decoding)."""
    sha = engine.scripts.sha["order.reserve"]
    start = time.perf_counter()
    for base in range(0, n, 1000):
        async with engine.redis.pipeline(transaction=False) as pipe:
            for i in range(base, min(n, base + 1000)):
                args = json.dumps(
                    {
                        "skus": ["SKU-0"],
                        "channel": CHANNEL,
                        "order_id": f"raw{i}",
                        "lines": [{"sku": "SKU-0", "location": LOCATION, "qty": 1}],
                    }
                )
                pipe.evalsha(
                    sha,
                    3,
                    keys.order_event(CHANNEL, f"raw{i}", "e"),
                    keys.order(CHANNEL, f"raw{i}"),
                    keys.inventory("SKU-0"),
                    args,
                    "259200000",
                    now_ms,
                )
            await pipe.execute()
    return n / (time.perf_counter() - start)


async def run_reserve_bench(
    *, ops: int, concurrency: int, skus: int, rate: float | None, progress: bool = True
) -> dict[str, Any]:
    """Measure reservations/s and the script's ceiling on a throw-away embedded Valkey."""
    say = click.echo if progress else (lambda *_a, **_k: None)
    with tempfile.TemporaryDirectory(prefix="invsync-bench-") as tmp:
        async with EmbeddedValkey(Path(tmp) / "data") as server:
            client = open_redis(server.url)
            try:
                async with Engine(client) as engine:
                    say(f"seeding {skus} SKUs on a fresh embedded Valkey (AOF everysec) ...")
                    async with asyncio.TaskGroup() as group:
                        for s in range(skus):
                            group.create_task(
                                engine.count(f"seed{s}", f"SKU-{s}", LOCATION, 10**12)
                            )
                    await _reserve_load(
                        engine,
                        ops=min(ops // 10, 20_000),
                        concurrency=concurrency,
                        skus=skus,
                        rate=None,
                        tag="warm",
                    )
                    say(
                        f"reserving {ops} single-line orders, {concurrency} concurrent callers ..."
                    )
                    seconds, lat = await _reserve_load(
                        engine,
                        ops=ops,
                        concurrency=concurrency,
                        skus=skus,
                        rate=rate,
                        tag="o",
                        bar="reserving" if progress else None,
                    )
                    lat.sort()
                    now_ms = int(time.time() * 1000)
                    exe = shutil.which("redis-benchmark")
                    ceiling: float | None = None
                    method = "pipelined raw loop"
                    if exe:
                        say("ceiling: redis-benchmark EVALSHA on the same server ...")
                        ceiling = await _ceiling_redis_benchmark(
                            exe,
                            server.socket_path,
                            engine.scripts.sha["order.reserve"],
                            now_ms,
                            max(ops, 100_000),
                        )
                        method = "redis-benchmark EVALSHA -c 50 -P 16"
                    if ceiling is None:
                        say("ceiling: pipelined raw loop on the same server ...")
                        ceiling = await _ceiling_pipelined(engine, now_ms, max(ops // 2, 50_000))
                        method = "pipelined raw loop"
            finally:
                await client.aclose()
    ops_per_s = ops / seconds
    figures = {
        "ops_per_s": round(ops_per_s, 1),
        "p50_ms": round(percentile(lat, 0.50) * 1000, 3),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 3),
        "ceiling_ops_per_s": round(ceiling, 1),
        "ratio": round(ops_per_s / ceiling, 3) if ceiling else 0.0,
        "ops": ops,
        "concurrency": concurrency,
        "rate": rate,
        "ceiling_method": method,
        "rss_mb": round(rss_mb(), 1),
        "cpus": os.cpu_count(),
    }
    say(
        f"\nreserve: {figures['ops_per_s']:,.0f} reservations/s   p50 {figures['p50_ms']} ms   "
        f"p99 {figures['p99_ms']} ms   (rss {figures['rss_mb']} MiB)\n"
        f"ceiling: {figures['ceiling_ops_per_s']:,.0f} ops/s ({method})   "
        f"ratio {figures['ratio']}"
    )
    return figures
