"""What the eBay adapter tests share: credentials, the simulated eBay, a hand-moved clock, the
schema fixture (``fixtures/ebay/inventory.schema.json``) and small builders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from redis.asyncio import Redis

from invsync.adapters.base import AdapterContext, Ingest, Update
from invsync.adapters.ebay import EbayAdapter, create
from invsync.core.config import Channel
from invsync.simulators.ebay import EbaySimulator
from invsync.simulators.server import Simulator

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "REFRESH",
    "SCHEMA",
    "Clock",
    "adapter",
    "clock",
    "conforms",
    "credentials",
    "ebay_channel",
    "make",
    "outcomes",
    "sim",
    "updates",
]

SCHEMA = json.loads((Path(__file__).parent / "fixtures/ebay/inventory.schema.json").read_text())
REFRESH = "v^1.1#i^1#r^1#refresh-token-of-the-seller"
CLIENT_ID = "invsync-app-PRD-0123456789"
CLIENT_SECRET = "PRD-client-secret"


def conforms(instance: Any, type_name: str) -> None:
    """Raise unless ``instance`` is a valid eBay ``type_name`` (from the schema fixture)."""
    jsonschema.validate(instance, {"$ref": f"#/$defs/{type_name}", "$defs": SCHEMA["$defs"]})


class Clock:
    """A monotonic clock the test moves by hand, shared by the adapter and the simulator."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ebay_channel(base: str, **options: Any) -> Channel:
    return Channel(
        id="ebay",
        kind="ebay",
        url=f"{base}/ebay",
        token_env="SIM_EBAY_REFRESH_TOKEN",
        options={
            "client_id_env": "SIM_EBAY_CLIENT_ID",
            "client_secret_env": "SIM_EBAY_CLIENT_SECRET",
            "timeout_s": 2.0,
            **options,
        },
    )


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_EBAY_REFRESH_TOKEN", REFRESH)
    monkeypatch.setenv("SIM_EBAY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SIM_EBAY_CLIENT_SECRET", CLIENT_SECRET)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(simulator: Simulator, clock: Clock) -> EbaySimulator:
    ebay = simulator.add(ebay_channel(simulator.url))
    assert isinstance(ebay, EbaySimulator)
    ebay.clock = clock
    # The seller's catalogue on eBay: what the tests push (a SKU never listed is refused).
    ebay.list_skus(["A", "B", "TEE-BLK-M", "TEE-BLK-L", "FLAKY"])
    ebay.list_skus(f"S{i:02}" for i in range(30))
    return ebay


def make(
    simulator: Simulator,
    session: aiohttp.ClientSession,
    clock: Clock,
    *,
    redis: Redis | None = None,
    wall: Callable[[], float] | None = None,
    ingest: Ingest | None = None,
    **options: Any,
) -> EbayAdapter:
    """An adapter on the simulated eBay; ``redis``, ``wall`` and ``ingest`` go in its context."""
    extra: dict[str, Any] = {}
    if wall is not None:
        extra["wall"] = wall
    if ingest is not None:
        extra["ingest"] = ingest
    ctx = AdapterContext(session=session, monotonic=clock, redis=redis, **extra)
    return create(ebay_channel(simulator.url, **options), ctx)


@pytest.fixture
def adapter(
    simulator: Simulator, sim: EbaySimulator, session: aiohttp.ClientSession, clock: Clock
) -> EbayAdapter:
    return make(simulator, session, clock)


def updates(*pairs: tuple[str, int]) -> list[Update]:
    return [Update(sku=sku, available=qty, version=i + 1) for i, (sku, qty) in enumerate(pairs)]


def outcomes(results: list[Any]) -> dict[str, str]:
    return {r.sku: r.outcome for r in results}


