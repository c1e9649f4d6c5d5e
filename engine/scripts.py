"""The engine's Lua scripts: loaded once, called by name with EVALSHA, pipelined under load.

Each ``lua/<name>.lua`` is prefixed with ``lua/_lib.lua`` and loaded with SCRIPT LOAD at start-up.
A call that meets NOSCRIPT (the server restarted or someone ran SCRIPT FLUSH) reloads the script
and is sent again: every script is idempotent by event id, so sending twice is safe.

Calls are batched without adding delay: the first call waits for nothing, and calls made while a
round trip is in flight go out together in the next pipeline (a Nagle without the timer). That is
what lets one process do tens of thousands of reservations per second.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .errors import StoreUnavailable

NAMES = (
    "stock.count",
    "stock.adjust",
    "order.reserve",
    "order.release",
    "order.fulfil",
    "order.return",
    "hold.place",
    "hold.release",
)


def script_source(name: str) -> bytes:
    """The full text of script ``name``: the shared library followed by the script itself."""
    folder = resources.files(__package__).joinpath("lua")
    lib = folder.joinpath("_lib.lua").read_bytes()
    body = folder.joinpath(f"{name}.lua").read_bytes()
    return lib + b"\n" + body


@dataclass(slots=True)
class _Call:
    sha: str
    keys: Sequence[str]
    args: Sequence[str | bytes | int]
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Scripts:
    """Named Lua scripts on one Redis client, called through an auto-batching pipeline.

    Use as an async context manager: it owns the task that sends the batches and stops it,
    after the last queued call is answered, on exit.
    """

    def __init__(self, redis: aioredis.Redis, *, max_batch: int = 512) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._source = {name: script_source(name) for name in NAMES}
        self.sha = {name: hashlib.sha1(src).hexdigest() for name, src in self._source.items()}
        self._by_sha = {sha: name for name, sha in self.sha.items()}
        self._queue: list[_Call] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Scripts:
        await self.load()
        self._task = asyncio.create_task(self._sender(), name="invsync-scripts-sender")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def load(self) -> None:
        """SCRIPT LOAD every script (idempotent); raises StoreUnavailable if Redis is away."""
        try:
            for name, src in self._source.items():
                sha = await self._redis.script_load(src)
                if sha != self.sha[name]:  # pragma: no cover - would mean a hashing mismatch
                    raise RuntimeError(f"script {name} loaded as {sha}, expected {self.sha[name]}")
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis did not answer while loading scripts: {exc}") from exc

    async def call(self, name: str, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any:
        """Run script ``name``; returns its raw reply or raises StoreUnavailable."""
        if self._task is None or self._closing:
            raise RuntimeError("Scripts is not running (use it as an async context manager)")
        call = _Call(self.sha[name], keys, args)
        self._queue.append(call)
        self._wake.set()
        return await call.future

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._send(batch)
                except Exception as exc:  # noqa: BLE001 - handed to every caller, not swallowed
                    for call in batch:
                        if not call.future.done():
                            call.future.set_exception(exc)
            if self._closing and not self._queue:
                return

    async def _send(self, batch: list[_Call]) -> None:
        pending = batch
        for attempt in range(2):
            try:
                replies = await self._execute(pending)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                error = StoreUnavailable(f"Redis is unavailable: {exc}")
                for call in pending:
                    if not call.future.done():
                        call.future.set_exception(error)
                return
            retry: list[_Call] = []
            for call, reply in zip(pending, replies, strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    retry.append(call)
                elif call.future.done():
                    continue  # the caller was cancelled; its script ran or not, idempotently
                elif isinstance(reply, Exception):
                    call.future.set_exception(reply)
                else:
                    call.future.set_result(reply)
            if not retry:
                return
            await self.load()
            pending = retry

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        if len(batch) == 1:
            call = batch[0]
            try:
                return [await self._redis.evalsha(call.sha, len(call.keys), *call.keys, *call.args)]
            except (NoScriptError, ResponseError) as exc:
                return [exc]
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in batch:
                pipe.evalsha(call.sha, len(call.keys), *call.keys, *call.args)
            return list(await pipe.execute(raise_on_error=False))
