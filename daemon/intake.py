"""Durable intake: every accepted event is appended to a Redis Stream before it is acknowledged.

``append`` records a whole request atomically (MULTI/EXEC: all events or none) and returns only
once Redis has them, so a 202 means the events survive a crash of the daemon. ``consume`` feeds
them to the processor through a consumer group; an entry is acknowledged (XACK) only after it was
processed, and entries a crash left pending are processed again at start-up (safe: every engine
call is idempotent by the event's id).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core.clock import Clock, SystemClock, sleep_unless
from ..core.errors import StoreUnavailable
from ..core.events import Event, decode_event, encode_event
from ..core.retry import Backoff

log = structlog.get_logger("invsync.intake")

STREAM = "intake:{events}"
GROUP = "invsync"

#: The pause before reading again after the store failed: 0.1 s doubling to 5 s, no jitter (one
#: consumer per daemon: there is no herd to spread).
STORE_RETRY = Backoff(0.1, 5.0, jitter="none")


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded event: its stream id, the event, where it came from, when it was accepted."""

    id: str
    event: Event
    source: str
    accepted_ms: int


def _accepted_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Intake:
    """The intake stream on one Redis client; ``clock`` times the retry pauses and the lag."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        stream: str = STREAM,
        consumer: str | None = None,
        reclaim_idle_ms: int = 30_000,
        clock: Clock | None = None,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.consumer = consumer or f"invsync-{socket.gethostname()}"
        self._reclaim_idle_ms = reclaim_idle_ms
        self._clock: Clock = clock or SystemClock()

    async def append(self, events: Sequence[Event], *, source: str) -> list[str]:
        """Record ``events`` atomically; returns their stream ids. Raises StoreUnavailable."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for event in events:
                    pipe.xadd(self.stream, {"e": encode_event(event), "src": source})
                ids = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"could not record events: {exc}") from exc
        return [_text(i) for i in ids]

    async def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start) if it does not exist yet."""
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def lag(self) -> int:
        """Entries recorded but not yet read by the group, plus those read but not acknowledged."""
        groups: list[dict[Any, Any]] = await self.redis.xinfo_groups(self.stream)
        for group in groups:
            if _text(group.get("name", b"")) == GROUP:
                lag = group.get("lag") or 0
                pending = group.get("pending") or 0
                return int(lag) + int(pending)
        return 0

    async def lag_seconds(self, now_ms: int | None = None) -> float:
        """Age of the oldest event recorded but not yet processed (0 when caught up)."""
        now_ms = now_ms if now_ms is not None else self._clock.wall_ms()
        summary: Any = await self.redis.xpending(self.stream, GROUP)
        oldest = summary.get("min") if summary and summary.get("pending") else None
        if oldest is None:
            groups: list[dict[Any, Any]] = await self.redis.xinfo_groups(self.stream)
            group = next((g for g in groups if _text(g.get("name", b"")) == GROUP), None)
            if group is None or not group.get("lag"):
                return 0.0
            after: Any = await self.redis.xrange(
                self.stream, min="(" + _text(group.get("last-delivered-id")), count=1
            )
            if not after:
                return 0.0
            oldest = after[0][0]
        return max(0.0, (now_ms - _accepted_ms(_text(oldest))) / 1000)

    def _entries(self, rows: Sequence[tuple[object, dict[object, object]]]) -> list[Entry]:
        out = []
        for raw_id, fields in rows:
            entry_id = _text(raw_id)
            if not fields:  # trimmed or deleted while pending: nothing to replay
                continue
            raw = fields.get(b"e")  # the client returns bytes keys (decode_responses=False)
            try:
                if not isinstance(raw, bytes):
                    raise KeyError("the entry has no event field")
                event = decode_event(raw)
            except (msgspec.DecodeError, KeyError) as exc:
                log.error("intake_undecodable_entry", entry=entry_id, error=str(exc))
                continue
            out.append(
                Entry(
                    id=entry_id,
                    event=event,
                    source=_text(fields.get(b"src", b"?")),
                    accepted_ms=_accepted_ms(entry_id),
                )
            )
        return out

    async def consume(
        self,
        handle: Callable[[list[Entry]], Awaitable[None]],
        *,
        batch: int = 512,
        block_ms: int = 500,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Feed batches to ``handle`` until ``stop`` is set; XACK each batch after it returns.

        First replays this consumer's own pending entries (a crash left them unacknowledged),
        then claims entries other consumers left idle, then reads new ones. If ``handle`` raises
        StoreUnavailable the batch stays pending and is retried after a backoff (``STORE_RETRY``,
        cut short by ``stop``).
        """
        stop = stop or asyncio.Event()
        backlog = True  # start with what this consumer had read but not acknowledged
        failures = 0  # consecutive store failures
        while not stop.is_set():
            try:
                if backlog:
                    await self.ensure_group()
                    rows = await self._read("0", batch, None)
                    if not rows:
                        rows = await self._claim(batch)
                    if not rows:
                        backlog = False
                        continue
                else:
                    rows = await self._read(">", batch, block_ms)
                    if not rows:
                        continue
                entries = self._entries(rows)
                if entries:
                    await handle(entries)
                await self.redis.xack(self.stream, GROUP, *[_text(r[0]) for r in rows])
                failures = 0
            except (StoreUnavailable, RedisConnectionError, RedisTimeoutError) as exc:
                delay = STORE_RETRY.delay(failures)
                log.warning("intake_store_unavailable", error=str(exc), retry_in_s=delay)
                backlog = True
                failures += 1
                await sleep_unless(self._clock, delay, stop)

    async def _read(
        self, start: str, count: int, block_ms: int | None
    ) -> list[tuple[object, dict[object, object]]]:
        reply: Any = await self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: start}, count=count, block=block_ms
        )
        if not reply:
            return []
        rows: list[tuple[object, dict[object, object]]] = reply[0][1]
        return rows

    async def _claim(self, count: int) -> list[tuple[object, dict[object, object]]]:
        reply: Any = await self.redis.xautoclaim(
            self.stream, GROUP, self.consumer, self._reclaim_idle_ms, "0-0", count=count
        )
        rows: list[tuple[object, dict[object, object]]] = reply[1] if reply else []
        return rows

    async def trim(self) -> None:
        """Drop entries every consumer has acknowledged (keeps the stream bounded)."""
        summary: Any = await self.redis.xpending(self.stream, GROUP)
        oldest = summary.get("min") if summary else None
        if oldest is None:
            info: list[dict[Any, Any]] = await self.redis.xinfo_groups(self.stream)
            delivered = next(
                (_text(g.get("last-delivered-id")) for g in info if _text(g.get("name")) == GROUP),
                None,
            )
            if delivered is None or delivered == "0-0":
                return
            ms, seq = delivered.split("-")
            oldest = f"{ms}-{int(seq) + 1}"
        await self.redis.xtrim(self.stream, minid=_text(oldest), approximate=True)
