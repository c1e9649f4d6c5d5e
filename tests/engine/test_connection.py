"""The Store: embedded or external, failing fast while the store is down, recovering after."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from redis.utils import HIREDIS_AVAILABLE

from invsync.core.errors import StoreError, StoreUnavailable
from invsync.engine.connection import Store, open_redis, redact, translate_errors
from invsync.engine.embedded import EmbeddedValkey

#: Behavioural bound for "fails fast": generous, far below a hang.
FAST = 5.0


async def test_store_without_url_runs_the_embedded_server(tmp_path: Path) -> None:
    async with Store(None, tmp_path / "data") as store:
        assert store.embedded is not None
        assert store.url == store.embedded.url
        await store.redis.set(b"sku:1", b"\x00\xff")
        assert await store.redis.get(b"sku:1") == b"\x00\xff"  # bytes, undecoded
        pid = store.embedded.pid
    assert pid is not None
    assert not (tmp_path / "data" / "valkey.sock").exists()
    with pytest.raises(RuntimeError):
        _ = store.redis


async def test_store_against_redis_url(tmp_path: Path) -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set: no external Redis to test against")
    key = f"invsync-test:{uuid.uuid4()}".encode()
    async with Store(url, tmp_path / "unused") as store:
        assert store.embedded is None
        try:
            await store.redis.set(key, b"1", ex=60)
            assert await store.redis.incr(key) == 2
        finally:
            await store.redis.delete(key)
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize(
    "url", ["unix:///nonexistent/invsync/valkey.sock", "redis://127.0.0.1:1/0"]
)
async def test_a_store_that_does_not_answer_fails_on_enter(url: str, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"store at {url} unavailable"):
        async with Store(url, tmp_path, connect_timeout=1.0):
            pass
    assert time.monotonic() - start < FAST


async def test_passwords_never_appear_in_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable) as failure:
        async with Store("redis://admin:s3cret@127.0.0.1:1/0", tmp_path):
            pass
    assert "s3cret" not in str(failure.value)
    assert "redis://admin:***@127.0.0.1:1/0" in str(failure.value)
    assert (
        redact("unix:///run/v.sock?db=1&password=s3cret") == "unix:///run/v.sock?db=1&password=***"
    )


async def test_operations_fail_fast_while_the_server_is_down_and_work_once_it_is_back(
    tmp_path: Path,
) -> None:
    async with Store(None, tmp_path / "data") as store:
        assert store.embedded is not None
        await store.redis.set(b"acknowledged", b"yes")
        await store.embedded.kill()

        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            async with store.translate_errors():
                await store.redis.get(b"acknowledged")
        assert time.monotonic() - start < FAST

        # The server comes back on the same dir and socket; the same client reconnects.
        async with EmbeddedValkey(tmp_path / "data", owner=False) as again:
            assert again.started
            async with store.translate_errors():
                assert await store.redis.get(b"acknowledged") == b"yes"
            restarted = again.pid
    # The owner stops whatever server runs in its dir, the restarted one included.
    assert restarted is not None
    assert not (tmp_path / "data" / "valkey.sock").exists()


async def test_a_hung_server_fails_within_the_operation_timeout(tmp_path: Path) -> None:
    async with Store(None, tmp_path / "data", op_timeout=0.3) as store:
        assert store.embedded is not None and store.embedded.pid is not None
        await store.redis.set(b"k", b"v")
        os.kill(store.embedded.pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(StoreUnavailable):
                async with store.translate_errors():
                    await store.redis.get(b"k")
            assert time.monotonic() - start < FAST
        finally:
            os.kill(store.embedded.pid, signal.SIGCONT)
        async with store.translate_errors():
            assert await store.redis.get(b"k") == b"v"


async def test_translate_errors_decorates_engine_calls(tmp_path: Path) -> None:
    redis = open_redis("unix:///nonexistent/invsync/valkey.sock", connect_timeout=0.5)

    @translate_errors("unix:///nonexistent/invsync/valkey.sock")
    async def read() -> bytes | None:
        return await redis.get(b"k")

    try:
        with pytest.raises(StoreUnavailable, match="nonexistent"):
            await read()
    finally:
        await redis.aclose()


async def test_an_embedded_store_that_cannot_start_raises_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file, not a dir")
    with pytest.raises(StoreError, match="cannot use"):
        async with Store(None, tmp_path / "data"):
            pass


def test_clients_parse_with_hiredis_and_retry_twice() -> None:
    redis = open_redis("redis://127.0.0.1:6379/0", connect_timeout=1.5, op_timeout=4.0)
    kwargs = redis.connection_pool.connection_kwargs
    assert HIREDIS_AVAILABLE
    assert kwargs["socket_connect_timeout"] == 1.5
    assert kwargs["socket_timeout"] == 4.0
    assert kwargs["retry"].get_retries() == 2
    assert kwargs["health_check_interval"] > 0
