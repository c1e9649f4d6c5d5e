"""Durable intake: every accepted event is appended to a Redis Stream before it is acknowledged.

``append`` records a whole request atomically (one script call: all events or none) and returns only
once Redis has them, so a 202 means the events survive a crash of the daemon. ``consume`` feeds
them to the processor through a consumer group; an entry is acknowledged (XACK) only after it was
processed, and entries a crash left pending are processed again at start-up (safe: every engine
call is idempotent by the event's id).

``append`` gives up after ``op_timeout`` seconds in all (a store that hangs, e.g. SIGSTOPped, is
a prompt ``StoreUnavailable``, the HTTP intake's 503, not a request that hangs). A store outage
while consuming leaves the batch pending; it is read again after a backoff and never counts
against an event. An event whose own processing fails (an error that is not the store's) is
tried again up to ``max_attempts`` times in all; its failed attempts are counted in the hash
``ATTEMPTS`` (the stream's delivery counter would also count the redeliveries an outage causes).
Then, as an entry that cannot be decoded at all, it goes to ``on_poison`` (the daemon opens a
``bad_event`` incident with its payload and the error), is acknowledged, and processing goes on.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core.clock import Clock, SystemClock, sleep_unless
from ..core.errors import StoreUnavailable
from ..core.events import Event, decode_event, encode_event
from ..core.retry import Backoff

log = structlog.get_logger("invsync.intake")

STREAM = "intake:{events}"
GROUP = "invsync"
#: Stream entry id -> failed attempts of its event (errors of the event itself, not outages).
ATTEMPTS = "intake:{events}:attempts"
#: Attempts an event gets before it is set aside as a ``bad_event`` (``[redis] event_attempts``).
MAX_ATTEMPTS = 5
#: Entries one ``XTRIM`` may drop, and calls per ``trim`` (``Intake.trim``).
TRIM_LIMIT = 10_000
TRIM_ROUNDS = 1_000

#: The pause before reading again after the store failed: 0.1 s doubling to 5 s, no jitter (one
#: consumer per daemon: there is no herd to spread).
STORE_RETRY = Backoff(0.1, 5.0, jitter="none")
#: The pause before an event that failed is tried again: 0.1 s doubling to 2 s.
EVENT_RETRY = Backoff(0.1, 2.0, jitter="none")

#: Replies of a store that is busy or broken, not of a command that is wrong (redis-py raises
#: them as ResponseError): an event meeting them did not fail, the store did.
_STORE_REPLIES = ("LOADING", "MISCONF", "READONLY", "OOM", "MASTERDOWN", "TRYAGAIN", "BUSY ")


#: Appends a request's events (ARGV[2..]) from ``ARGV[1]`` (the source) to the stream KEYS[1];
#: returns their ids. One script call is atomic as MULTI/EXEC is, and costs one command to pack
#: and one reply to parse instead of N+2 (issue 14's profile: redis-py packing each XADD of a
#: transaction in Python was most of ``POST /v1/events``' own time).
_APPEND = """
local ids = {}
for i = 2, #ARGV do
  ids[i - 1] = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i], 'src', ARGV[1])
end
return ids
"""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is away or unable (retry as is), not that the work failed."""
    if isinstance(exc, StoreUnavailable | RedisConnectionError | RedisTimeoutError):
        return True
    if isinstance(exc, ConnectionError | TimeoutError):  # OSError's, and asyncio's timeout
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(_STORE_REPLIES)


class Deferred(Exception):
    """Not tried: an earlier entry of the same SKU or order failed, and order matters."""


class Poison(msgspec.Struct, frozen=True, kw_only=True):
    """An entry set aside: undecodable, or its event failed ``attempts`` times."""

    entry_id: str
    payload: str
    source: str
    error: str
    attempts: int
    event: Event | None = None


#: What ``consume``'s ``handle`` returns: entry id -> the error of each entry that failed.
Failures = Mapping[str, BaseException]


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
        op_timeout: float | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.attempts_key = ATTEMPTS if stream == STREAM else f"{stream}:attempts"
        self.consumer = consumer or f"invsync-{socket.gethostname()}"
        self._reclaim_idle_ms = reclaim_idle_ms
        self._clock: Clock = clock or SystemClock()
        self._op_timeout = op_timeout
        #: Failed attempts an event gets before it is set aside (read at each failure).
        self.max_attempts = max_attempts
        #: Entries with a failed attempt counted since this process started.
        self._counted: set[str] = set()
        self._append_script: AsyncScript | None = None  # registered on the first append

    async def append(self, events: Sequence[Event], *, source: str) -> list[str]:
        """Record ``events`` atomically; returns their stream ids. Raises StoreUnavailable, at
        the latest ``op_timeout`` seconds after the call (redis-py's own retries included)."""
        if self._append_script is None:
            self._append_script = self.redis.register_script(_APPEND)
        args = [source.encode(), *(encode_event(event) for event in events)]
        try:
            async with asyncio.timeout(self._op_timeout):
                ids = await self._append_script(keys=[self.stream], args=args)
        except TimeoutError as exc:
            raise StoreUnavailable(
                f"could not record events: the store did not answer within {self._op_timeout:g} s"
            ) from exc
        except (RedisError, OSError) as exc:
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

    def _entries(
        self, rows: Sequence[tuple[object, dict[object, object]]]
    ) -> tuple[list[Entry], list[Poison]]:
        out, bad = [], []
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
                shown = raw if isinstance(raw, bytes) else repr(dict(fields)).encode()
                bad.append(
                    Poison(
                        entry_id=entry_id,
                        payload=shown[:2000].decode(errors="replace"),
                        source=_text(fields.get(b"src", b"?")),
                        error=f"undecodable entry: {exc}",
                        attempts=1,
                    )
                )
                continue
            out.append(
                Entry(
                    id=entry_id,
                    event=event,
                    source=_text(fields.get(b"src", b"?")),
                    accepted_ms=_accepted_ms(entry_id),
                )
            )
        return out, bad

    async def consume(
        self,
        handle: Callable[[list[Entry]], Awaitable[Failures | None]],
        *,
        batch: int = 512,
        block_ms: int = 500,
        stop: asyncio.Event | None = None,
        on_poison: Callable[[Poison], Awaitable[None]] | None = None,
    ) -> None:
        """Feed batches to ``handle`` until ``stop`` is set; XACK each entry once it is done.

        First replays this consumer's own pending entries (a crash left them unacknowledged),
        then claims entries other consumers left idle, then reads new ones. If ``handle`` raises
        a store error (``is_outage``) the batch stays pending and is retried after a backoff
        (``STORE_RETRY``, cut short by ``stop``); nothing is counted against its events.
        ``handle`` returns the entries whose event failed (entry id -> error): those stay pending
        and are tried again after ``EVENT_RETRY``, until their ``max_attempts``-th failure sends
        them to ``on_poison`` and they are acknowledged. Undecodable entries go to ``on_poison``
        at once. Any other error of ``handle`` propagates (the batch stays pending).
        """
        stop = stop or asyncio.Event()
        backlog = True  # start with what this consumer had read but not acknowledged
        failures = 0  # consecutive store failures
        retries = 0  # consecutive rounds with an event to try again
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
                again = await self._process(rows, handle, on_poison, clean=backlog)
                failures = 0
            except Exception as exc:
                if not is_outage(exc):
                    raise
                delay = STORE_RETRY.delay(failures)
                log.warning("intake_store_unavailable", error=str(exc), retry_in_s=delay)
                backlog = True
                failures += 1
                await sleep_unless(self._clock, delay, stop)
                continue
            if again:
                backlog = True  # the failed entries are pending: read them again
                await sleep_unless(self._clock, EVENT_RETRY.delay(retries), stop)
                retries += 1
            else:
                retries = 0

    async def _process(
        self,
        rows: list[tuple[object, dict[object, object]]],
        handle: Callable[[list[Entry]], Awaitable[Failures | None]],
        on_poison: Callable[[Poison], Awaitable[None]] | None,
        *,
        clean: bool,
    ) -> bool:
        """Handle one batch and acknowledge what is done; True if some entry is to be retried.
        ``clean``: also forget the attempt counts of acknowledged entries (a replay after a
        restart does not know which of them failed before)."""
        entries, bad = self._entries(rows)
        for poison in bad:
            await self._set_aside(poison, on_poison)
        failed = (await handle(entries) if entries else None) or {}
        done = [_text(row[0]) for row in rows if _text(row[0]) not in failed]
        again = False
        counted: list[str] = []
        for entry in entries:
            error = failed.get(entry.id)
            if error is None:
                continue
            if isinstance(error, Deferred):
                again = True
                continue
            attempts = int(await self.redis.hincrby(self.attempts_key, entry.id, 1))
            counted.append(entry.id)
            message = f"{type(error).__name__}: {error}"
            if attempts < self.max_attempts:
                log.warning(
                    "event_failed",
                    event_id=entry.event.id,
                    entry=entry.id,
                    attempt=attempts,
                    of=self.max_attempts,
                    error=message,
                )
                again = True
                continue
            await self._set_aside(
                Poison(
                    entry_id=entry.id,
                    payload=encode_event(entry.event).decode(errors="replace"),
                    source=entry.source,
                    error=message,
                    attempts=attempts,
                    event=entry.event,
                ),
                on_poison,
            )
            done.append(entry.id)
        if done:
            forget = done if clean else [i for i in done if i in counted or i in self._counted]
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(self.stream, GROUP, *done)
                if forget:
                    pipe.hdel(self.attempts_key, *forget)
                await pipe.execute()
            self._counted.difference_update(done)
        self._counted.update(counted)
        return again

    async def _set_aside(
        self, poison: Poison, on_poison: Callable[[Poison], Awaitable[None]] | None
    ) -> None:
        """Hand ``poison`` to ``on_poison`` (store errors propagate: the batch is retried)."""
        log.error(
            "event_set_aside",
            entry=poison.entry_id,
            event_id=poison.event.id if poison.event is not None else None,
            attempts=poison.attempts,
            error=poison.error,
            payload=poison.payload[:500],
        )
        if on_poison is None:
            return
        try:
            await on_poison(poison)
        except Exception as exc:
            if is_outage(exc):
                raise
            # The log line above keeps the payload; an entry that cannot be set aside must not
            # stop the intake either.
            log.exception("event_set_aside_failed", entry=poison.entry_id, error=str(exc))

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

    async def trim(self) -> int:
        """Drop entries every consumer has acknowledged (keeps the stream bounded): everything
        below the oldest pending entry, or below the first entry not yet delivered. Returns how
        many were dropped.

        ``XTRIM ... MINID ~`` removes whole stream nodes, and at most ``TRIM_LIMIT`` entries per
        call (the server's default limit for ``~`` is 100 nodes, 10,000 entries); it is called
        again until nothing is left to drop, so a backlog of a million acknowledged entries goes
        in one round, in short steps that never block the store for long."""
        summary: Any = await self.redis.xpending(self.stream, GROUP)
        oldest = summary.get("min") if summary else None
        if oldest is None:
            info: list[dict[Any, Any]] = await self.redis.xinfo_groups(self.stream)
            delivered = next(
                (_text(g.get("last-delivered-id")) for g in info if _text(g.get("name")) == GROUP),
                None,
            )
            if delivered is None or delivered == "0-0":
                return 0
            ms, seq = delivered.split("-")
            oldest = f"{ms}-{int(seq) + 1}"
        dropped = 0
        for _ in range(TRIM_ROUNDS):
            n = int(
                await self.redis.xtrim(
                    self.stream, minid=_text(oldest), approximate=True, limit=TRIM_LIMIT
                )
            )
            dropped += n
            if n == 0:
                break
        return dropped
