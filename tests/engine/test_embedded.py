"""The embedded Valkey server: persistence across stops and crashes, adoption, ownership."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from invsync.core.errors import StoreError
from invsync.engine.embedded import EmbeddedValkey


@asynccontextmanager
async def client(server: EmbeddedValkey) -> AsyncIterator[Redis]:
    redis = Redis.from_url(server.url)
    try:
        yield redis
    finally:
        await redis.aclose()


def running(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (an orphan nobody reaps here) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in (b"Z", b"X")


async def answers(server: EmbeddedValkey) -> bool:
    try:
        async with client(server) as redis:
            return bool(await redis.ping())
    except RedisConnectionError:
        return False


async def test_data_survives_a_clean_stop_and_restart(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "data") as server, client(server) as redis:
        await redis.set(b"sku:1", b"7")
        first_pid = server.pid
    assert first_pid is not None and not running(first_pid)
    assert not (tmp_path / "data" / "valkey.sock").exists()

    async with EmbeddedValkey(tmp_path / "data") as server, client(server) as redis:
        assert server.started
        assert await redis.get(b"sku:1") == b"7"


async def test_every_acknowledged_write_survives_sigkill(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "data") as server:
        async with client(server) as redis:
            for i in range(500):
                await redis.set(f"k:{i}", i)
        await server.kill()
        assert server.pid is not None and not running(server.pid)

    async with EmbeddedValkey(tmp_path / "data") as server, client(server) as redis:
        values = await redis.mget([f"k:{i}" for i in range(500)])
        assert values == [str(i).encode() for i in range(500)]


async def test_aof_is_on_and_the_server_is_reachable_only_by_its_socket(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "data") as server, client(server) as redis:
        config = await redis.config_get("*")  # redis-py decodes CONFIG GET to str
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] == "everysec"
        assert config["aof-use-rdb-preamble"] == "yes"
        assert config["save"] == ""
        assert config["port"] == "0"
        assert config["unixsocketperm"] == "700"
        assert config["dir"] == str(server.data_dir)
        assert server.url == f"unix://{server.data_dir}/valkey.sock"
        assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o700
        assert (server.data_dir / "valkey.pid").read_text().strip() == str(server.pid)


_DAEMON_KILLED_WHILE_RUNNING = """
import asyncio, os, signal, sys
from pathlib import Path
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from invsync.engine.embedded import EmbeddedValkey

async def main():
    async with EmbeddedValkey(Path(sys.argv[1])) as server:
        await Redis.from_url(server.url).set(b"written-by", b"dead daemon")
        print(server.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_owner_adopts_the_server_of_a_daemon_killed_with_sigkill(tmp_path: Path) -> None:
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DAEMON_KILLED_WHILE_RUNNING,
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await daemon.communicate()
    assert daemon.returncode == -9
    orphan = int(out.splitlines()[-1])  # after the daemon's log lines
    try:
        assert running(orphan)
        async with EmbeddedValkey(tmp_path / "data") as server, client(server) as redis:
            assert not server.started
            assert server.pid == orphan
            assert await redis.get(b"written-by") == b"dead daemon"
        assert not running(orphan)
    finally:
        if running(orphan):
            os.kill(orphan, signal.SIGKILL)


async def test_cli_uses_the_daemons_server_and_leaves_it_running(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "data") as daemon:
        async with EmbeddedValkey(tmp_path / "data", owner=False) as cli:
            assert not cli.started
            assert cli.pid == daemon.pid
            async with client(cli) as redis:
                await redis.set(b"via", b"cli")
        assert await answers(daemon)
        async with client(daemon) as redis:
            assert await redis.get(b"via") == b"cli"


async def test_cli_stops_a_server_it_started(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "data", owner=False) as cli:
        assert cli.started
        pid = cli.pid
    assert pid is not None and not running(pid)


async def test_cli_leaves_its_server_to_a_daemon_that_adopted_it(tmp_path: Path) -> None:
    cli = EmbeddedValkey(tmp_path / "data", owner=False)
    async with cli:
        daemon = EmbeddedValkey(tmp_path / "data")
        await daemon.__aenter__()
        assert daemon.pid == cli.pid
    try:
        assert await answers(daemon)
    finally:
        await daemon.__aexit__(None, None, None)
    assert not await answers(daemon)


async def test_a_second_owner_of_the_same_dir_is_refused(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "data") as first:
        with pytest.raises(StoreError, match=r"another invsync daemon owns .*data"):
            async with EmbeddedValkey(tmp_path / "data"):
                pass
        assert await answers(first)
    async with EmbeddedValkey(tmp_path / "data"):
        pass  # the lock went with the first owner


async def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "data" / "valkey.sock"))
    stale.close()  # the file stays, nobody listens: what a crashed server leaves

    async with EmbeddedValkey(tmp_path / "data") as server:
        assert server.started
        assert await answers(server)


async def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(StoreError, match=r"cannot use .*data as the Valkey data dir"):
        async with EmbeddedValkey(tmp_path / "data"):
            pass


async def test_a_corrupt_aof_fails_start_with_the_valkey_log_tail(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "data") as server, client(server) as redis:
        await redis.set(b"k", b"v")
    manifest = next((tmp_path / "data" / "appendonlydir").glob("*.manifest"))
    manifest.write_text("this is not a manifest\n")

    for _ in range(2):  # a failed start leaves no lock or process behind
        with pytest.raises(StoreError, match="Valkey exited with status 1") as failure:
            async with EmbeddedValkey(tmp_path / "data"):
                pass
        assert "manifest" in str(failure.value).lower()
    # Valkey leaves its pid file behind when it exits on a load error; the process is gone.
    assert not running(int((tmp_path / "data" / "valkey.pid").read_text()))


async def test_the_killed_server_pid_is_reported(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "data")
    assert server.pid is None
    async with server:
        pid = server.pid
        assert pid is not None and running(pid)
        await server.kill()
        assert not running(pid)
    assert server.pid is None
    assert (tmp_path / "data" / "appendonlydir").is_dir()
