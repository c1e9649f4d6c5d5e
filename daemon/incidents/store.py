"""Incident records in Redis: their keys, writes, indexes and listings.

Keys (docs/keys.md): ``exc:{<id>}`` hash (``doc`` JSON, ``state``, ``claim``), ``exc:all`` and
``exc:open`` sorted sets of ids by creation time, ``exc:open:<kind>`` the open ids of one kind.
Every Redis call goes through ``call``, so an unreachable store is ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...core.errors import InvalidRequest, StoreUnavailable
from ...engine import keys
from .kinds import KINDS, STATES
from .records import ExceptionRecord, UnknownException, decode_record, encode_record

__all__ = [
    "ALL_INDEX",
    "ALL_KEPT",
    "MAX_PAGE",
    "OPEN_INDEX",
    "ExceptionStore",
    "as_text",
    "call",
    "open_kind_index",
    "record_key",
]

#: Largest page of ``GET /v1/exceptions``.
MAX_PAGE = 500
#: Records kept in ``exc:all`` (the oldest resolved ones drop out of listings, not the store).
ALL_KEPT = 100_000

ALL_INDEX = "exc:all"
OPEN_INDEX = "exc:open"


def record_key(exception_id: str) -> str:
    """The hash of one exception record."""
    return f"exc:{{{exception_id}}}"


def open_kind_index(kind: str) -> str:
    """The open exceptions of one kind, by creation time."""
    return f"exc:open:{kind}"


async def call(awaitable: Awaitable[Any]) -> Any:
    """Await a Redis call; a lost or timed-out connection becomes ``StoreUnavailable`` (503)."""
    try:
        return await awaitable
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc


def as_text(value: object) -> str:
    """A Redis reply (bytes or str) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class ExceptionStore:
    """Reads and writes exception records and keeps their indexes; no policy, no clock."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def get(self, exception_id: str) -> ExceptionRecord:
        """The record, or UnknownException."""
        keys.check_id(exception_id, "exception id")
        raw = await call(self.redis.hget(record_key(exception_id), "doc"))
        if raw is None:
            raise UnknownException(f"no exception {exception_id!r}")
        return decode_record(raw)

    async def query(
        self,
        *,
        state: str | None = "open",
        kind: str | None = None,
        channel: str | None = None,
        limit: int = 100,
        before_ms: int | None = None,
    ) -> list[ExceptionRecord]:
        """Records, newest first: open ones (``state="open"``), of one state, or all (None)."""
        if kind is not None and kind not in KINDS:
            raise InvalidRequest(f"unknown kind {kind!r} (known: {', '.join(KINDS)})", field="kind")
        if state is not None and state not in STATES:
            raise InvalidRequest(f"unknown state {state!r} (known: {', '.join(STATES)})")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be from 1 to {MAX_PAGE}", field="limit")
        if state == "open":
            index = open_kind_index(kind) if kind else OPEN_INDEX
        else:
            index = ALL_INDEX
        top: float | str = "+inf" if before_ms is None else f"({before_ms}"
        out: list[ExceptionRecord] = []
        start = 0
        chunk = max(limit, 100)
        while len(out) < limit:
            ids = await call(
                self.redis.zrevrangebyscore(index, top, "-inf", start=start, num=chunk)
            )
            if not ids:
                break
            start += len(ids)
            async with self.redis.pipeline(transaction=False) as pipe:
                for raw_id in ids:
                    pipe.hget(record_key(as_text(raw_id)), "doc")
                docs = await call(pipe.execute())
            for raw in docs:
                if raw is None:
                    continue
                rec = decode_record(raw)
                if (state is None or rec.state == state) and (kind is None or rec.kind == kind):
                    if channel is None or rec.channel == channel:
                        out.append(rec)
                        if len(out) >= limit:
                            break
        return out

    async def open_counts(self) -> dict[str, int]:
        """Kind -> open exceptions (for ``invsync_exceptions_open``)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind in KINDS:
                pipe.zcard(open_kind_index(kind))
            counts = await call(pipe.execute())
        return dict(zip(KINDS, (int(c) for c in counts), strict=True))

    async def add(self, record: ExceptionRecord) -> tuple[ExceptionRecord, bool]:
        """Store ``record`` unless its id exists: (the stored record, whether it is new)."""
        key = record_key(record.id)
        created = await call(self.redis.hsetnx(key, "doc", encode_record(record)))
        if not created:
            existing = await self.get(record.id)
            if existing.state == "open":
                await self._index_open(existing)  # a crash between the two writes: re-index
            return existing, False
        await call(self.redis.hset(key, "state", "open"))
        await self._index_open(record)
        return record, True

    async def _index_open(self, record: ExceptionRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(ALL_INDEX, {record.id: record.created_ms}, nx=True)
            pipe.zadd(OPEN_INDEX, {record.id: record.created_ms}, nx=True)
            pipe.zadd(open_kind_index(record.kind), {record.id: record.created_ms}, nx=True)
            pipe.zremrangebyrank(ALL_INDEX, 0, -ALL_KEPT - 1)
            await call(pipe.execute())

    async def save(self, record: ExceptionRecord) -> None:
        """Write the record as it is now (its indexes stay as they are)."""
        await call(
            self.redis.hset(
                record_key(record.id), mapping={"doc": encode_record(record), "state": record.state}
            )
        )

    async def close(self, record: ExceptionRecord) -> None:
        """Write a record that is no longer open and drop it from the open indexes, at once."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                record_key(record.id), mapping={"doc": encode_record(record), "state": record.state}
            )
            pipe.zrem(OPEN_INDEX, record.id)
            pipe.zrem(open_kind_index(record.kind), record.id)
            await call(pipe.execute())

    async def claim(self, exception_id: str, claimant: str) -> bool:
        """Take the record for one resolver, across processes; False when someone holds it."""
        return bool(await call(self.redis.hsetnx(record_key(exception_id), "claim", claimant)))

    async def release_claim(self, exception_id: str) -> None:
        """Let the record be resolved again (the action failed or left it open)."""
        await call(self.redis.hdel(record_key(exception_id), "claim"))
