"""The engine across a store outage: fail fast, apply nothing twice, recover by itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from invsync.core.errors import StoreUnavailable
from invsync.engine.connection import open_redis
from invsync.engine.embedded import EmbeddedValkey
from invsync.engine.engine import Engine
from invsync.engine.models import Line

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
