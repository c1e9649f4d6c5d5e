"""Fixtures of the simulator and adapter tests: a simulator server on loopback, an HTTP session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from invsync.simulators.server import Simulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for adapters (the daemon owns one in production)."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    """The simulator server on a free loopback port, with no channels yet: tests ``add`` the
    channel they need with ``url=f"{simulator.url}/<path>"`` (mounting works while running)."""
    async with Simulator(port=0, seed=7) as sim:
        yield sim
