"""The channel worker (the spec's channel actor): one per channel, the only sender to its adapter.

Spec, "Shape": it coalesces (latest value per SKU wins), batches to the channel's bulk API,
respects the channel's real rate limit, retries with backoff and jitter, trips a circuit breaker
on outage, and records the latency from the originating event to the channel's acknowledgement.

A worker is supervised: its owner (the daemon's ``ChannelManager``) awaits ``run()`` and starts a
new worker when it raises ``WorkerCrashed``. What must outlive a crash is in ``ChannelState``,
which the owner keeps and hands to the next worker: the values still to push (pending, and the
batch that was in flight), a full sync asked for, the circuit breaker and the rate limiter.
Values sent to the channel go to the state, never to a worker, so none is lost while a worker
is down.

What the channel was last sent lives in Redis, in the hash ``pushed:{<channel id>}`` (field
SKU -> ``"<available>:<version>"``), written after every acknowledged push: a restarted worker
resumes instead of re-pushing everything, and no per-SKU cache is held in memory. Memory is
bounded by the number of SKUs (one pending value each) plus one batch in flight.

Shutdown keeps what it has not pushed: a worker that is closed (SIGTERM, the channel replaced)
and could not push everything within its drain bound writes what is left to the store
(``engine.pending``); the next worker of the channel takes those values back before anything
else and pushes them first, without waiting for a full sync to reach them.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import get_args

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..adapters.base import (
    ChannelAdapter,
    ChannelError,
    Outcome,
    Permanent,
    PushResult,
    Retryable,
    Throttled,
    Unauthorized,
    Update,
)
from ..core.clock import Clock
from ..core.config import Channel
from ..core.retry import Backoff
from ..engine import keys
from ..engine.pending import PendingValue, save_pending, take_pending
from ..metrics.definitions import (
    CHANNEL_BREAKER_OPEN,
    CHANNEL_PENDING_SKUS,
    CHANNEL_PUSHES,
    SYNC_LATENCY,
)
from .breaker import BreakerState, CircuitBreaker
from .messages import AvailabilityChanged, ChannelMessage, FullSync
from .ratelimit import TokenBucket

__all__ = [
    "ChannelState",
    "ChannelWorker",
    "OnPermanent",
    "ValueStream",
    "WorkerCrashed",
    "pushed_key",
]

log = structlog.get_logger(__name__)

#: Called for every SKU a channel refuses for good: (sku, available, reason). Sync or async;
#: raising crashes the worker (the refused value is pushed again by the next one).
OnPermanent = Callable[[str, int, str], Awaitable[object] | None]
#: Walks every SKU and yields its current availability for this channel (for FullSync).
ValueStream = Callable[[], AsyncIterator[AvailabilityChanged]]

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)

#: Push retries: 0.2 s at first, 30 s at most, full jitter.
DEFAULT_BACKOFF = (0.2, 30.0)
#: SKUs one channel keeps pending at most (~100 bytes each). Past it a value for another SKU is
#: not kept: the channel is marked overflowed and a full sync, which reads every SKU's current
#: value from the store in pages, pushes it instead. A slow channel (EDI at 100 SKUs/s) behind a
#: million-SKU import so holds 50,000 values, not a million (issue 14).
MAX_PENDING = 50_000


class WorkerCrashed(Exception):
    """A channel worker's flusher or full sync raised ``cause``; its state is intact, and its
    owner starts a new worker on the same state."""

    def __init__(self, channel: str, cause: BaseException) -> None:
        super().__init__(f"channel {channel!r} worker crashed: {cause!r}")
        self.channel = channel
        self.cause = cause


def pushed_key(channel_id: str) -> str:
    """The hash of what ``channel_id`` was last sent: SKU -> ``"<available>:<version>"``."""
    return keys.pushed(channel_id)


def _parse_pushed(raw: object) -> tuple[int, int] | None:
    # Unreadable: treat as never sent, the next push rewrites it.
    parsed = keys.parse_pushed(raw)
    return None if parsed is None else (parsed[0], parsed[1])


def _no_op(sku: str, available: int, reason: str) -> None:
    return None


class ChannelState:
    """What one channel's successive workers share: the latest value per SKU still to push
    (``pending``), the batch in flight, whether a full sync is wanted, the circuit breaker and
    the rate limiter. ``receive`` takes the channel's messages and never waits.

    ``on_breaker(state)`` is told of every breaker transition (the daemon opens and closes
    ``channel_unreachable`` incidents with it).
    """

    def __init__(
        self,
        channel: Channel,
        clock: Clock,
        *,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 1.0,
        breaker_max_cooldown: float = 60.0,
        on_breaker: Callable[[BreakerState], None] | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.channel = channel
        self.pending: dict[str, AvailabilityChanged] = {}
        self.max_pending = max_pending
        #: A value was not kept because pending was full: a full sync (another pass, if one
        #: runs now) pushes what it would have.
        self.overflowed = False
        self.inflight: dict[str, AvailabilityChanged] = {}
        self.syncing = False
        self.wake = asyncio.Event()  # set when pending has something (or on close)
        self.space = asyncio.Event()  # set when the flusher took a batch out of pending
        self.sync_wanted = asyncio.Event()
        self.on_breaker = on_breaker
        self._log = log.bind(channel=channel.id)
        self._pending_gauge = CHANNEL_PENDING_SKUS.labels(channel=channel.id)
        self._breaker_gauge = CHANNEL_BREAKER_OPEN.labels(channel=channel.id)
        self.bucket = TokenBucket(channel.rate_limit_per_s, channel.effective_burst(), clock=clock)
        self.breaker = CircuitBreaker(
            clock=clock,
            threshold=breaker_threshold,
            base_cooldown=breaker_cooldown,
            max_cooldown=breaker_max_cooldown,
            on_change=self._breaker_changed,
        )
        # The channel's gauges exist from now on. The pending one is read when scraped, not
        # set on every offer (six offers per event on six channels: issue 14's profile); a weak
        # reference, so a replaced channel's state is not kept alive by its gauge.
        this = weakref.ref(self)
        self._pending_gauge.set_function(lambda: 0 if (s := this()) is None else len(s.pending))
        self._breaker_gauge.set(0)

    def receive(self, message: ChannelMessage) -> None:
        """Queue a value (latest version wins) or ask for a full sync; never waits."""
        match message:
            case AvailabilityChanged():
                self.offer(message)
            case FullSync():
                self.sync_wanted.set()

    @property
    def unpushed(self) -> int:
        """Values not acknowledged by the channel yet: pending plus in flight."""
        return len(self.pending) + len(self.inflight)

    @property
    def busy(self) -> bool:
        """True while anything is pending, in flight, being synced or asked to be synced."""
        return bool(self.pending or self.inflight or self.syncing or self.sync_wanted.is_set())

    def offer(
        self, update: AvailabilityChanged, *, requeue: bool = False, bounded: bool = True
    ) -> bool:
        """Put ``update`` in pending unless a newer value is pending or in flight.

        A requeued (failed) value also yields to a pending one of the same version: that one
        arrived later, so it is the fresher word for that version.

        A value for a SKU not pending yet, while ``max_pending`` SKUs are, is not kept
        (``bounded``; requeued values and the full sync's own, which waits for room, always
        are): the state is marked ``overflowed`` and a full sync asked for (or, while one runs,
        another pass after it), so the SKU's current value still reaches the channel.
        """
        inflight = self.inflight.get(update.sku)
        if not requeue and inflight is not None and update.version < inflight.version:
            return False
        current = self.pending.get(update.sku)
        if current is not None and (
            update.version < current.version or (requeue and update.version == current.version)
        ):
            return False
        if current is None and bounded and not requeue and len(self.pending) >= self.max_pending:
            if not self.overflowed:
                self.overflowed = True
                self._log.info("channel pending full; a full sync follows", cap=self.max_pending)
            if not self.syncing:
                self.sync_wanted.set()
            return False
        self.pending[update.sku] = update
        self.pending_changed()
        return True

    def requeue(self, batch: Iterable[AvailabilityChanged]) -> None:
        """Put values that were not acknowledged back into pending (newer ones win)."""
        for update in batch:
            self.offer(update, requeue=True)

    def take(self, n: int) -> list[AvailabilityChanged]:
        """Move up to ``n`` pending values in flight (oldest first) and return them."""
        batch = [self.pending.pop(sku) for sku in list(itertools.islice(self.pending, n))]
        self.inflight = {u.sku: u for u in batch}
        self.pending_changed()
        self.space.set()
        return batch

    def unpushed_values(self) -> list[AvailabilityChanged]:
        """Every value not acknowledged yet (in flight and pending), the newest per SKU."""
        values = dict(self.inflight)
        for sku, update in self.pending.items():
            held = values.get(sku)
            if held is None or update.version >= held.version:
                values[sku] = update
        return list(values.values())

    def recover(self) -> int:
        """After a crash: the batch that was in flight goes back to pending, and a probe the
        breaker let through (that never reported) is forgotten. Returns how many came back."""
        lost = list(self.inflight.values())
        self.inflight = {}
        self.requeue(lost)
        self.breaker.abandon_probe()
        self.syncing = False
        return len(lost)

    def pending_changed(self) -> None:
        """Wake the flusher when there is something to push."""
        if self.pending:
            self.wake.set()

    def _breaker_changed(self, state: BreakerState) -> None:
        self._breaker_gauge.set(0 if state is BreakerState.CLOSED else 1)
        self._log.warning(
            "channel breaker " + state.value,
            failures=self.breaker.failures,
            cooldown_s=self.breaker.cooldown,
        )
        if self.on_breaker is not None:
            self.on_breaker(state)


class ChannelWorker:
    """Pushes the latest availability of every changed SKU to one channel, within its limits.

    Values and full-sync requests go to ``state`` (``receive``), never waiting on the channel;
    ``run()`` pushes them from a flusher task and streams a full sync's ``current_values()``
    into pending from a second task, at most ``lookahead_batches`` batches ahead of the flusher.
    Both tasks belong to ``run()``'s TaskGroup: ``close()`` makes it push what is pending for up
    to ``drain_timeout`` seconds (on the clock) and return; a crash of either task makes it
    raise ``WorkerCrashed`` at once, with the state intact for the next worker.
    """

    def __init__(
        self,
        channel: Channel,
        adapter: ChannelAdapter,
        redis: aioredis.Redis,
        clock: Clock,
        current_values: ValueStream,
        *,
        state: ChannelState | None = None,
        on_permanent: OnPermanent = _no_op,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 1.0,
        breaker_max_cooldown: float = 60.0,
        drain_timeout: float = 5.0,
        lookahead_batches: int = 10,
        backoff: Backoff | None = None,
    ) -> None:
        self.channel = channel
        self.on_permanent = on_permanent
        # The breaker settings only matter to a worker that makes its own state.
        self.state = state or ChannelState(
            channel,
            clock,
            breaker_threshold=breaker_threshold,
            breaker_cooldown=breaker_cooldown,
            breaker_max_cooldown=breaker_max_cooldown,
        )
        self._adapter = adapter
        self._redis = redis
        self._clock = clock
        self._current_values = current_values
        self._hash = pushed_key(channel.id)
        self._drain_timeout = drain_timeout
        # The channel's API may take fewer per call than the configured batch (eBay: 25).
        limit = getattr(adapter, "max_batch", None)
        self._batch_size = min(channel.batch_size, limit) if limit else channel.batch_size
        self._lookahead = max(1, lookahead_batches) * self._batch_size
        self._backoff = backoff or Backoff(*DEFAULT_BACKOFF)
        self._log = log.bind(channel=channel.id)
        self._closing = False
        self._stop = asyncio.Event()  # set by close() or by a crash
        self._crash: Exception | None = None
        self._attempt = 0  # consecutive batches that got nothing acknowledged
        self._latency = SYNC_LATENCY.labels(channel=channel.id)
        self._pushes = {
            outcome: CHANNEL_PUSHES.labels(channel=channel.id, outcome=outcome)
            for outcome in get_args(Outcome)
        }

    # --- what callers use -----------------------------------------------------------------------

    def receive(self, message: ChannelMessage) -> None:
        """``state.receive``: queue a value (latest version wins) or ask for a full sync."""
        self.state.receive(message)

    @property
    def breaker(self) -> CircuitBreaker:
        """The channel's circuit breaker (kept in the state across restarts)."""
        return self.state.breaker

    @property
    def bucket(self) -> TokenBucket:
        """The channel's rate limiter (kept in the state across restarts)."""
        return self.state.bucket

    @property
    def pending_count(self) -> int:
        """SKUs waiting to be pushed (not counting the batch in flight)."""
        return len(self.state.pending)

    @property
    def busy(self) -> bool:
        """True while anything is pending, in flight or being synced."""
        return self.state.busy

    async def pushed(self, sku: str) -> tuple[int, int] | None:
        """What the channel last acknowledged for ``sku``: (available, version), or None."""
        return _parse_pushed(await self._redis.hget(self._hash, sku))

    def close(self) -> None:
        """Ask ``run()`` to stop the full sync, push what is pending (bounded) and return."""
        self._closing = True
        self._stop.set()
        self.state.wake.set()

    # --- the worker's life ----------------------------------------------------------------------

    async def run(self) -> None:
        """Push until ``close()``, then drain for up to ``drain_timeout`` and return; unpushed
        values are logged, stay in the state and are kept in the store for the next start
        (``engine.pending``). Values kept by a previous run are taken back first. Raises
        WorkerCrashed when a task raised."""
        await self._restore()
        async with asyncio.TaskGroup() as tasks:
            flusher = tasks.create_task(
                self._guarded(self._flush_loop), name=f"flush {self.channel.id}"
            )
            syncer = tasks.create_task(
                self._guarded(self._sync_loop), name=f"sync {self.channel.id}"
            )
            try:
                await self._stop.wait()  # close(), or a task crashed
                if self._crash is None:
                    await _end(syncer)
                    self.state.wake.set()
                    deadline = tasks.create_task(self._clock.sleep(self._drain_timeout))
                    await asyncio.wait({flusher, deadline}, return_when=asyncio.FIRST_COMPLETED)
                    deadline.cancel()
                    if not flusher.done():
                        self._log.warning(
                            "channel drain timed out",
                            unpushed=self.state.unpushed,
                            timeout_s=self._drain_timeout,
                        )
            finally:
                # Ended here, not left to the group's single cancel: see _end.
                await _end(syncer)
                await _end(flusher)
        if self._crash is not None:
            raise WorkerCrashed(self.channel.id, self._crash) from self._crash
        await self._keep()

    async def _restore(self) -> None:
        """Offer the values a previous run kept in the store (a newer one in pending wins)."""
        try:
            kept = await take_pending(self._redis, self.channel.id)
        except RedisError as exc:
            # Left in the store for the next worker; the full sync finds every value anyway.
            self._log.warning("cannot read kept pending values", error=str(exc))
            return
        for value in kept:
            self.state.offer(
                AvailabilityChanged(
                    sku=value.sku,
                    available=value.available,
                    version=value.version,
                    accepted_ms=value.accepted_ms,
                )
            )
        if kept:
            self._log.info("channel_pending_restored", skus=len(kept))

    async def _keep(self) -> None:
        """Write what was not pushed to the store (replacing what an earlier run kept)."""
        values = self.state.unpushed_values()
        try:
            kept = await save_pending(
                self._redis,
                self.channel.id,
                (PendingValue(u.sku, u.available, u.version, u.accepted_ms) for u in values),
            )
        except RedisError as exc:  # unreachable, out of memory...: logged, never a crash
            self._log.error(
                "channel_pending_lost",
                unpushed=len(values),
                error=str(exc),
                reason="the store is unreachable; the next start's full sync pushes them",
            )
            return
        if kept:
            self._log.warning("channel_pending_kept", unpushed=kept)

    async def _guarded(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run one of the worker's tasks; a crash is kept for ``run()`` to raise (as
        WorkerCrashed, once the other task has ended) instead of aborting the group."""
        try:
            await work()
        except Exception as exc:  # not swallowed: run() raises it
            if self._crash is None:
                self._crash = exc
            self._stop.set()

    # --- the flusher ----------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        state = self.state
        while True:
            if not state.pending:
                if self._closing:
                    return
                state.wake.clear()
                await state.wake.wait()
                continue
            wait = state.breaker.retry_in()
            if wait > 0:
                # Open: no requests; pending keeps coalescing meanwhile (one value per SKU).
                await self._clock.sleep(wait)
                continue
            delay = 0.0
            # In flight from here (an older value arriving meanwhile is refused at once) until
            # settled. A crash leaves them in flight, and ChannelState.recover() requeues them.
            taken = state.take(self._batch_size)
            batch = await self._unsent(taken)
            if batch:
                await state.bucket.acquire()
                # Values that arrived while we waited for a token are fresher: send those.
                batch = [state.pending.pop(u.sku, u) for u in batch]
                state.pending_changed()
                state.inflight = {u.sku: u for u in batch}
                if state.breaker.allow():
                    delay = await self._push(batch)
                else:
                    state.requeue(batch)
            state.inflight = {}
            if delay > 0:
                await self._clock.sleep(delay)

    async def _unsent(self, batch: list[AvailabilityChanged]) -> list[AvailabilityChanged]:
        """``batch`` without what the channel already shows (or shows newer), per the hash."""
        if not batch:
            return batch
        try:
            raw = await self._redis.hmget(self._hash, [u.sku for u in batch])
        except _REDIS_DOWN as exc:
            self._log.warning("cannot read pushed values; retrying", error=str(exc))
            self.state.requeue(batch)
            self._attempt += 1
            await self._clock.sleep(self._backoff.delay(self._attempt))
            return []
        out: list[AvailabilityChanged] = []
        caught_up: dict[str, str] = {}
        for update, value in zip(batch, raw, strict=True):
            sent = _parse_pushed(value)
            if sent is None:
                out.append(update)
                continue
            available, version = sent
            if version > update.version:
                continue  # never push an older version over a newer one
            if available == update.available:
                if update.version > version:
                    caught_up[update.sku] = keys.format_pushed(
                        available, update.version, self._clock.wall_ms()
                    )
                continue
            out.append(update)
        if caught_up:
            await self._record(caught_up)
        return out

    async def _push(self, batch: list[AvailabilityChanged]) -> float:
        """One call to the adapter and its consequences; returns how long to back off."""
        breaker = self.state.breaker
        updates = [Update(sku=u.sku, available=u.available, version=u.version) for u in batch]
        results: Sequence[PushResult]
        try:
            results = await self._adapter.push(updates)
        except Throttled as exc:
            results = _all(batch, "throttled", exc)
        except Unauthorized as exc:
            # Refused credentials are an outage of the whole channel, not a verdict on these
            # SKUs: keep the values, let the breaker open (a channel_unreachable exception
            # follows) and push them when an operator has fixed the credentials.
            breaker.failure()
            return await self._settle(batch, _all(batch, "retryable", exc))
        except Permanent as exc:
            results = _all(batch, "permanent", exc)
        except (Retryable, ChannelError) as exc:  # a bare ChannelError is taken as transient
            breaker.failure()
            return await self._settle(batch, _all(batch, "retryable", exc))
        except Exception as exc:
            # An adapter bug must not kill the flusher and lose what is pending: retried, and
            # logged with its traceback for whoever fixes the adapter.
            self._log.exception("adapter_push_crashed", skus=len(batch))
            breaker.failure()
            crashed = Retryable(f"adapter error: {type(exc).__name__}: {exc}")
            return await self._settle(batch, _all(batch, "retryable", crashed))
        breaker.success()  # the channel answered, whatever it said
        return await self._settle(batch, results)

    async def _settle(
        self, batch: list[AvailabilityChanged], results: Sequence[PushResult]
    ) -> float:
        """Record, requeue or drop each SKU of a pushed batch; returns how long to back off."""
        state = self.state
        by_sku = {r.sku: r for r in results}
        ok: list[AvailabilityChanged] = []
        throttled: list[PushResult] = []
        retry: list[PushResult] = []
        refused: list[tuple[AvailabilityChanged, PushResult]] = []
        counts: dict[str, int] = {}
        for update in batch:
            result = by_sku.get(update.sku) or PushResult(
                sku=update.sku, outcome="retryable", error="the adapter gave no result"
            )
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
            match result.outcome:
                case "ok":
                    ok.append(update)
                case "throttled":
                    throttled.append(result)
                    state.offer(update, requeue=True)
                case "retryable":
                    retry.append(result)
                    state.offer(update, requeue=True)
                case "permanent":
                    refused.append((update, result))
        for kind, n in counts.items():
            self._pushes[kind].inc(n)  # once per outcome, not once per SKU: hot path

        if ok:
            now_ms = self._clock.wall_ms()
            for update in ok:
                if update.accepted_ms > 0:
                    self._latency.observe(max(0.0, (now_ms - update.accepted_ms) / 1000))
            await self._record(
                {u.sku: keys.format_pushed(u.available, u.version, now_ms) for u in ok}
            )
            self._attempt = 0
            state.bucket.recover()
        elif retry or throttled:
            self._attempt += 1

        for update, result in refused:
            reason = result.error or "refused by the channel"
            self._log.error("channel refused update", sku=update.sku, error=reason)
            outcome = self.on_permanent(update.sku, update.available, reason)
            if inspect.isawaitable(outcome):
                await outcome

        if throttled:
            hint = max(r.retry_after or 0.0 for r in throttled)
            pause = hint or max(1.0 / state.bucket.rate, self._backoff.delay(self._attempt))
            state.bucket.pause_until(self._clock.now() + pause)
            state.bucket.slow_down()
            self._log.info("channel throttled", pause_s=round(pause, 3), rate=state.bucket.rate)
        if retry and not ok:
            hint = max(r.retry_after or 0.0 for r in retry)
            delay = max(hint, self._backoff.delay(self._attempt))
            self._log.info(
                "channel push failed; backing off",
                skus=len(retry),
                attempt=self._attempt,
                delay_s=round(delay, 3),
                error=retry[0].error,
            )
            return delay
        return 0.0

    async def _record(self, values: dict[str, str]) -> None:
        try:
            await self._redis.hset(self._hash, mapping=values)  # type: ignore[arg-type]
        except _REDIS_DOWN as exc:
            # The channel has the values; only a restart would re-push them (harmlessly).
            # Any other store error (OOM ...) crashes the worker: the batch is requeued.
            self._log.warning("cannot record pushed values", skus=len(values), error=str(exc))

    # --- full sync ------------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        state = self.state
        while not self._stop.is_set():
            await state.sync_wanted.wait()
            state.sync_wanted.clear()
            state.syncing = True
            state.overflowed = False  # what overflows from now on needs a pass after this one
            try:
                await self._sync()
            finally:
                state.syncing = False
            if state.overflowed and not self._stop.is_set():
                state.sync_wanted.set()

    async def _sync(self) -> None:
        """Stream every current value into pending; a newer FullSync starts it over (the
        values it streamed so far were computed under what the newer one replaces)."""
        state = self.state
        values = self._current_values()
        queued = 0
        try:
            async for update in values:
                while len(state.pending) >= self._lookahead:
                    state.space.clear()
                    await state.space.wait()
                if self._stop.is_set():
                    return
                if state.sync_wanted.is_set():
                    self._log.info("full sync started over", queued=queued)
                    return
                state.offer(update, bounded=False)
                queued += 1
        finally:
            aclose = getattr(values, "aclose", None)
            if aclose is not None:
                await aclose()
        self._log.info("full sync queued", skus=queued)


async def _end(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` until it has ended. redis-py (8.1) swallows a cancellation that lands
    during a command (and often resets ``Task.cancelling()``), so one cancel may leave the task
    running on, and a TaskGroup waiting for it forever."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)


def _all(batch: list[AvailabilityChanged], outcome: Outcome, exc: ChannelError) -> list[PushResult]:
    return [
        PushResult(sku=u.sku, outcome=outcome, retry_after=exc.retry_after, error=exc.message)
        for u in batch
    ]
