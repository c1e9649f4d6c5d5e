"""The engine across a store outage: fail fast, apply nothing twice, recover by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from invsync.core.clock import ManualClock
from invsync.core.errors import StoreUnavailable
from invsync.engine.connection import open_redis
from invsync.engine.embedded import EmbeddedValkey
from invsync.engine.engine import Engine
from invsync.engine.models import Line
from invsync.engine.scripts import Scripts

TEE = "TEE-BLK-M"


async def test_engine_fails_fast_while_the_store_is_down_and_recovers_after(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = EmbeddedValkey(data)
    await server.__aenter__()
    client = open_redis(server.url, connect_timeout=0.5, op_timeout=1.0)
    try:
        async with Engine(client) as engine:
            await engine.count("c1", TEE, "wh-east", 10)
            await engine.reserve(
                "r1", "shopify", "1001", [Line(sku=TEE, qty=3, location="wh-east")]
            )

            await server.kill()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await engine.reserve(
                    "r2", "shopify", "1002", [Line(sku=TEE, qty=2, location="wh-east")]
                )
            assert time.monotonic() - started < 5.0  # fails fast, does not hang
            with pytest.raises(StoreUnavailable):
                await engine.stock(TEE)

            # The server comes back on the same data: it has lost its loaded scripts (NOSCRIPT),
            # and the client must reconnect on its own.
            async with EmbeddedValkey(data, owner=False) as again:
                state = await engine.stock(TEE)
                assert state is not None
                assert state.locations["wh-east"].on_hand == 10
                assert state.locations["wh-east"].reserved == 3
                # The refused-by-outage order is retried with the same event id: applied once.
                first = await engine.reserve(
                    "r2", "shopify", "1002", [Line(sku=TEE, qty=2, location="wh-east")]
                )
                retry = await engine.reserve(
                    "r2", "shopify", "1002", [Line(sku=TEE, qty=2, location="wh-east")]
                )
                assert not first.duplicate and retry.duplicate
                assert retry.skus[TEE].locations["wh-east"].reserved == 5
                assert again.pid is not None
    finally:
        await client.aclose()
        await server.__aexit__(None, None, None)


async def test_acknowledged_reservations_survive_a_kill_9_of_the_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acknowledged: list[str] = []
    async with EmbeddedValkey(data) as server:
        client = open_redis(server.url)
        try:
            async with Engine(client) as engine:
                await engine.count("c1", TEE, "wh-east", 1000)
                for i in range(300):
                    await engine.reserve(
                        f"r{i}", "shopify", f"o{i}", [Line(sku=TEE, qty=1, location="wh-east")]
                    )
                    acknowledged.append(f"o{i}")
                await server.kill()  # no SHUTDOWN, no final fsync: only what AOF already has
        finally:
            await client.aclose()
    async with EmbeddedValkey(data) as server:
        client = open_redis(server.url)
        try:
            async with Engine(client) as engine:
                state = await engine.stock(TEE)
                assert state is not None
                assert state.locations["wh-east"].reserved == len(acknowledged)
                for order_id in acknowledged:
                    order = await engine.order("shopify", order_id)
                    assert order is not None and order.state == "reserved"
        finally:
            await client.aclose()


async def _parked(clock: ManualClock, within_s: float = 10.0) -> float:
    """Wait (real time: reconnecting is real I/O) until a sleep is pending on ``clock``; returns
    how long from now it lasts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while clock.sleepers == 0:
        assert loop.time() < deadline, "nothing ever slept on the clock"
        await asyncio.sleep(0.005)
    wake = clock.next_deadline
    assert wake is not None
    return wake - clock.now()


async def test_a_batch_the_store_does_not_take_is_resent_twice_on_the_clock_then_refused(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    server = EmbeddedValkey(tmp_path / "data")
    await server.__aenter__()
    client = open_redis(server.url, connect_timeout=0.5, op_timeout=1.0)
    try:
        async with Scripts(client, clock=clock) as scripts:
            await server.kill()
            call = asyncio.create_task(scripts.call("stock.count", [TEE], ["{}", "1000", 0]))
            for pause in (0.05, 0.1):  # resending is safe: every script is idempotent
                assert await _parked(clock) == pytest.approx(pause)
                await asyncio.sleep(0.05)
                assert not call.done()  # waits for the clock, not for real time
                clock.advance(pause)
            with pytest.raises(StoreUnavailable, match="unavailable"):
                await asyncio.wait_for(call, timeout=10)
            assert clock.sleepers == 0  # refused after the third try: no fourth pause
    finally:
        await client.aclose()
        await server.__aexit__(None, None, None)


async def test_a_hung_store_fails_a_batch_within_its_timeouts_and_serves_it_once_back(
    tmp_path: Path,
) -> None:
    # The senders' connections have no per-read socket timeout: op_timeout bounds each batch.
    async with EmbeddedValkey(tmp_path / "data") as server:
        assert server.pid is not None
        client = open_redis(server.url, op_timeout=0.3)
        try:
            async with Engine(client, op_timeout=0.3) as engine:
                await engine.count("c1", TEE, "wh-east", 10)
                os.kill(server.pid, signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    with pytest.raises(StoreUnavailable):
                        await asyncio.wait_for(engine.adjust("a1", TEE, "wh-east", 1), 10)
                    # three tries of 0.3 s and two short pauses, not a hang
                    assert time.monotonic() - started < 3.0
                finally:
                    os.kill(server.pid, signal.SIGCONT)
                outcome = await engine.adjust("a1", TEE, "wh-east", 1)
                assert outcome.skus[TEE].locations["wh-east"].on_hand == 11
        finally:
            await client.aclose()
