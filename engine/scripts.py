"""The engine's Lua scripts: loaded once, called by name with EVALSHA, pipelined under load.

Each ``lua/<name>.lua`` is prefixed with ``lua/_lib.lua`` and loaded with SCRIPT LOAD at start-up.
A call that meets NOSCRIPT (the server restarted or someone ran SCRIPT FLUSH) reloads the script
and is sent again: every script is idempotent by event id, so sending twice is safe.

Calls are batched without adding delay: the first call waits for nothing, and calls made while a
round trip is in flight go out together in the next pipeline (a Nagle without the timer). That is
what lets one process do tens of thousands of reservations per second.

A batch is written as raw RESP on one pooled connection (``send_packed_command`` and
``read_response`` of redis-py's connection class), not through redis-py's public pipeline API.
Measured on the 2-core development machine (`invsync bench reserve --ops 100000 --concurrency
64`, four alternating pairs), the public pipeline lost 12-15% of reservations/s: redis-py packs
each command in pure Python and times every reply. Those connection methods are not part of
redis-py's documented API, so ``pyproject.toml`` pins ``redis`` to the major version this was
tested with (8.x); a new major must pass ``tests/engine`` before the pin moves.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core.clock import Clock, SystemClock
from ..core.errors import StoreUnavailable
from ..core.retry import Backoff

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

#: Round trips a batch gets when Redis does not answer (the first try and two resends).
_ATTEMPTS = 3

#: The pause before resending a batch that met a connection error: 50 ms, then 100 ms. Short
#: and without jitter: the client's own retries (``open_redis``) have already spread the load.
RESEND_BACKOFF = Backoff(0.05, 0.1, jitter="none")


def script_source(name: str) -> bytes:
    """The full text of script ``name``: the shared library followed by the script itself."""
    folder = resources.files(__package__).joinpath("lua")
    lib = folder.joinpath("_lib.lua").read_bytes()
    body = folder.joinpath(f"{name}.lua").read_bytes()
    return lib + b"\n" + body


def _resp(parts: Sequence[bytes]) -> bytes:
    """One command in the Redis protocol (RESP2 array of bulk strings)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def _bytes(value: str | bytes | int) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()


@dataclass(slots=True)
class _Call:
    name: str
    packed: bytes  # EVALSHA sha numkeys key... arg..., as RESP
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Scripts:
    """Named Lua scripts on one Redis client, called through an auto-batching pipeline.

    Use as an async context manager: it owns the tasks that send the batches and stops them,
    after the last queued call is answered, on exit. ``senders`` round trips may be in flight at
    once (on as many connections), so Python prepares the next batch while Redis runs this one.
    ``op_timeout`` bounds one round trip; the pauses between resends are slept on ``clock``.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_batch: int = 512,
        senders: int = 2,
        op_timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._senders = senders
        self._op_timeout = op_timeout
        self._clock: Clock = clock or SystemClock()
        self._source = {name: script_source(name) for name in NAMES}
        self.sha = {name: hashlib.sha1(src).hexdigest() for name, src in self._source.items()}
        self._head = {name: [b"EVALSHA", sha.encode()] for name, sha in self.sha.items()}
        self._queue: list[_Call] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Scripts:
        await self.load()
        self._tasks = [
            asyncio.create_task(self._sender(), name=f"invsync-scripts-sender-{i}")
            for i in range(self._senders)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        self._wake.set()
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks)

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
        if not self._tasks or self._closing:
            raise RuntimeError("Scripts is not running (use it as an async context manager)")
        # Packed here, in the caller's task, so the sender only joins bytes.
        parts = [*self._head[name], str(len(keys)).encode()]
        parts.extend(key.encode() for key in keys)
        parts.extend(_bytes(arg) for arg in args)
        call = _Call(name, _resp(parts))
        self._queue.append(call)
        self._wake.set()
        return await call.future

    async def _sender(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                await self._send(batch)
            except Exception as exc:  # not swallowed: every caller of the batch gets it
                for call in batch:
                    if not call.future.done():
                        call.future.set_exception(exc)

    async def _send(self, batch: list[_Call]) -> None:
        pending = batch
        for attempt in range(_ATTEMPTS):
            try:
                replies = await self._execute(pending)
            except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
                if attempt < _ATTEMPTS - 1:
                    # Resending is safe: every script is idempotent by its event id.
                    await RESEND_BACKOFF.wait(self._clock, attempt)
                    continue
                error = StoreUnavailable(f"Redis is unavailable: {exc or type(exc).__name__}")
                for call in pending:
                    if not call.future.done():
                        call.future.set_exception(error)
                return
            retry: list[_Call] = []
            for call, reply in zip(pending, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    retry.append(call)
                elif call.future.done():
                    continue  # the caller was cancelled; its script ran or not, idempotently
                elif isinstance(reply, Exception):
                    call.future.set_exception(reply)
                else:
                    call.future.set_result(reply)
            if not retry:
                return
            await self.load()  # the server lost its scripts (restart, SCRIPT FLUSH)
            pending = retry
        for call in pending:
            if not call.future.done():
                call.future.set_exception(StoreUnavailable("scripts keep disappearing"))

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        """One round trip: every call of ``batch`` written at once; a reply or error per call."""
        pool = self._redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(b"".join(call.packed for call in batch), False)
            replies: list[Any] = []
            # One timer for the whole batch, not one per reply (as a socket timeout would be).
            async with asyncio.timeout(self._op_timeout):
                for _ in batch:
                    try:
                        replies.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:
                        replies.append(exc)
            return replies
        except BaseException:
            # A half-read connection is useless: drop it, the pool opens a fresh one.
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
