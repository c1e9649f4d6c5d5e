"""``invsync bench channels``: how long a full sync of N SKUs takes on each simulated marketplace,
through the real adapter and the simulator's real rate-limit model, and what one call costs.

The channels are the config's simulated ones (url under ``[simulator] host:port``), served by an
in-process simulator on a free port. Credentials the channels name by ``*_env`` and that are not
set get throw-away values (the simulator and the adapter read the same variables). Each channel
is pushed ``skus`` updates in batches of its ``batch_size`` (cut to the API's ``max_batch``),
one call at a time, waiting out every throttle answer as the channel actor would: the result is
bounded by the marketplace's limits, which is the point (a first sync of a large catalogue).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from ..adapters.base import AdapterContext, ChannelError, Throttled, Update
from ..adapters.registry import make_adapter
from ..core.config import Channel, Config
from ..simulators.server import Simulator
from .reserve import percentile


def _env_names(channel: Channel) -> list[str]:
    names = [n for n in (channel.token_env, channel.secret_env) if n]
    names += [v for k, v in channel.options.items() if k.endswith("_env") and isinstance(v, str)]
    return names


def _moved(channel: Channel, old: str, new: str) -> Channel:
    """The channel with every simulator url (its own and url options) moved to ``new``."""
    options = {
        k: (v.replace(old, new, 1) if isinstance(v, str) and v.startswith(old) else v)
        for k, v in channel.options.items()
    }
    url = (channel.url or "").replace(old, new, 1)
    return msgspec.structs.replace(channel, url=url, options=options)


async def _sync(
    adapter: Any, updates: list[Update], size: int
) -> tuple[list[float], int, int, int]:
    """Push every update; (call latencies, calls, throttle answers, failures given up)."""
    pending = list(updates)
    latencies: list[float] = []
    calls = throttled = failed = 0
    errors_in_a_row = 0
    while pending:
        batch, rest = pending[:size], pending[size:]
        started = time.perf_counter()
        try:
            results = await adapter.push(batch)
        except Throttled as exc:
            throttled += 1
            await asyncio.sleep(exc.retry_after if exc.retry_after is not None else 0.5)
            continue
        except ChannelError:
            errors_in_a_row += 1
            if errors_in_a_row > 20:
                raise
            await asyncio.sleep(0.2)
            continue
        errors_in_a_row = 0
        latencies.append(time.perf_counter() - started)
        calls += 1
        again: list[Update] = []
        wait = 0.0
        for update, result in zip(batch, results, strict=True):
            if result.outcome == "ok":
                continue
            if result.outcome == "permanent":
                failed += 1
                continue
            throttled += result.outcome == "throttled"
            wait = max(wait, result.retry_after or 0.0)
            again.append(update)
        if wait:
            await asyncio.sleep(wait)
        pending = again + rest
    return latencies, calls, throttled, failed


async def run_channels_bench(config: Config, skus: int, only: list[str] | None) -> dict[str, Any]:
    """Time a full sync of ``skus`` SKUs on each simulated channel of ``config``."""
    old = f"http://{config.simulator.host}:{config.simulator.port}"
    channels = [
        ch
        for ch in config.channels
        if ch.enabled and (ch.url or "").startswith(old + "/") and (not only or ch.id in only)
    ]
    if not channels:
        raise ValueError(f"no simulated channels in {config.source} (urls under {old}/)")
    for channel in channels:
        for name in _env_names(channel):
            os.environ.setdefault(name, f"bench-{name.lower()}")
    out: dict[str, Any] = {"skus": skus, "channels": {}}
    async with Simulator(port=0) as sim, aiohttp.ClientSession() as session:
        for original in channels:
            channel = _moved(original, old, sim.url)
            simulated = sim.add(channel)
            adapter = make_adapter(channel, AdapterContext(session=session))
            if simulated is None or adapter is None:
                continue
            limit = getattr(adapter, "max_batch", None)
            size = min(channel.batch_size, limit) if limit else channel.batch_size
            updates = [
                Update(sku=f"BENCH-{i:06d}", available=i % 50, version=1) for i in range(skus)
            ]
            simulated.list_skus(u.sku for u in updates)  # the seller's catalogue on the channel
            started = time.perf_counter()
            try:
                latencies, calls, throttled, failed = await _sync(adapter, updates, size)
            finally:
                await adapter.aclose()
            elapsed = time.perf_counter() - started
            shown = sum(1 for u in updates if simulated.quantities.get(u.sku) == u.available)
            latencies.sort()
            out["channels"][original.id] = {
                "kind": channel.kind,
                "path": urlsplit(channel.url or "").path,
                "batch": size,
                "seconds": round(elapsed, 3),
                "skus_per_s": round(skus / elapsed, 1) if elapsed else None,
                "calls": calls,
                "call_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
                "call_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
                "throttle_answers": throttled,
                "refused": failed,
                "shown_by_channel": shown,
            }
    return out


def render(result: dict[str, Any]) -> str:
    """The human table of ``run_channels_bench``'s result."""
    lines = [
        f"full sync of {result['skus']} SKUs per simulated channel "
        "(real adapters, the simulators' rate limits):",
        f"  {'channel':<12}{'kind':<9}{'batch':>6}{'seconds':>9}{'SKUs/s':>9}{'calls':>7}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'throttled':>10}{'shown':>7}",
    ]
    for channel, r in result["channels"].items():
        lines.append(
            f"  {channel:<12}{r['kind']:<9}{r['batch']:>6}{r['seconds']:>9.2f}"
            f"{r['skus_per_s']:>9.1f}{r['calls']:>7}{r['call_p50_ms']:>8.1f}"
            f"{r['call_p99_ms']:>8.1f}{r['throttle_answers']:>10}{r['shown_by_channel']:>7}"
        )
    return "\n".join(lines)
