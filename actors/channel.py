"""The channel actor: one per channel (key ``channel:<id>``), the only sender to its adapter.

Spec, "Shape": it coalesces (latest value per SKU wins), batches to the channel's bulk API,
respects the channel's real rate limit, retries with backoff and jitter, trips a circuit breaker
on outage, and records the latency from the originating event to the channel's acknowledgement.

What the channel was last sent lives in Redis, in the hash ``pushed:{<channel id>}`` (field
SKU -> ``"<available>:<version>"``), written after every acknowledged push: a restarted actor
resumes instead of re-pushing everything, and no per-SKU cache is held in memory. Memory is
bounded by the number of SKUs (one pending value each) plus one batch in flight.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import get_args

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
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
from ..engine import keys
from ..metrics.definitions import (
    CHANNEL_BREAKER_OPEN,
    CHANNEL_PENDING_SKUS,
    CHANNEL_PUSHES,
    SYNC_LATENCY,
)
from .breaker import BreakerState, CircuitBreaker
from .messages import AvailabilityChanged, ChannelMessage, FullSync
from .ratelimit import TokenBucket
from .runtime import Actor

__all__ = ["ChannelActor", "OnPermanent", "ValueStream", "pushed_key"]

log = structlog.get_logger(__name__)

#: Called for every SKU a channel refuses for good: (sku, error). May be sync or async.
OnPermanent = Callable[[str, str], Awaitable[None] | None]
#: Walks every SKU and yields its current availability for this channel (for FullSync).
ValueStream = Callable[[], AsyncIterator[AvailabilityChanged]]

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


def pushed_key(channel_id: str) -> str:
    """The hash of what ``channel_id`` was last sent: SKU -> ``"<available>:<version>"``."""
    return keys.pushed(channel_id)


def _parse_pushed(raw: object) -> tuple[int, int] | None:
    # Unreadable: treat as never sent, the next push rewrites it.
    parsed = keys.parse_pushed(raw)
    return None if parsed is None else (parsed[0], parsed[1])


def _no_op(sku: str, error: str) -> None:
    return None


class ChannelActor(Actor[ChannelMessage]):
    """Pushes the latest availability of every changed SKU to one channel, within its limits.

    ``receive`` never blocks on the channel: values go to ``pending`` and a flusher task owned
    by the actor (started in ``on_activate``, drained and stopped in ``on_passivate``) pushes
    them. A FullSync streams ``current_values()`` into ``pending`` from a second owned task,
    at most ``lookahead_batches`` batches ahead of the flusher.
    """

    def __init__(
        self,
        key: str,
        channel: Channel,
        adapter: ChannelAdapter,
        redis: aioredis.Redis,
        clock: Clock,
        current_values: ValueStream,
        *,
        on_permanent: OnPermanent = _no_op,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 1.0,
        breaker_max_cooldown: float = 60.0,
        drain_timeout: float = 5.0,
        lookahead_batches: int = 10,
        backoff_base: float = 0.2,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(key)
        self.channel = channel
        self.on_permanent = on_permanent
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
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rng = rng or random.Random()
        self._log = log.bind(channel=channel.id)
        self.bucket = TokenBucket(channel.rate_limit_per_s, channel.effective_burst(), clock=clock)
        self.breaker = CircuitBreaker(
            clock=clock,
            threshold=breaker_threshold,
            base_cooldown=breaker_cooldown,
            max_cooldown=breaker_max_cooldown,
            on_change=self._breaker_changed,
        )
        self._pending: dict[str, AvailabilityChanged] = {}
        self._inflight: dict[str, AvailabilityChanged] = {}
        self._wake = asyncio.Event()  # set when pending has something (or on close)
        self._space = asyncio.Event()  # set when the flusher took a batch out of pending
        self._flusher: asyncio.Task[None] | None = None
        self._syncer: asyncio.Task[None] | None = None
        self._closing = False
        self._attempt = 0  # consecutive batches that got nothing acknowledged
        self._pending_gauge = CHANNEL_PENDING_SKUS.labels(channel=channel.id)
        self._breaker_gauge = CHANNEL_BREAKER_OPEN.labels(channel=channel.id)
        self._latency = SYNC_LATENCY.labels(channel=channel.id)
        self._pushes = {
            outcome: CHANNEL_PUSHES.labels(channel=channel.id, outcome=outcome)
            for outcome in get_args(Outcome)
        }

    # --- the actor's life -----------------------------------------------------------------------

    async def on_activate(self) -> None:
        """Start the flusher; the channel's gauges appear (at 0) from now on."""
        self._closing = False
        self._pending_gauge.set(len(self._pending))
        self._breaker_gauge.set(0 if self.breaker.state is BreakerState.CLOSED else 1)
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"flush {self.key}")

    async def receive(self, message: ChannelMessage) -> None:
        """Queue a value (latest version wins) or start a full sync; never waits on the channel."""
        await self._raise_if_crashed()
        match message:
            case AvailabilityChanged():
                self._offer(message)
            case FullSync():
                await _cancel(self._syncer)
                self._syncer = asyncio.create_task(self._sync(), name=f"full sync {self.key}")

    async def on_passivate(self) -> None:
        """Stop a running full sync, push what is pending for up to ``drain_timeout`` seconds
        (on the clock), then stop the flusher. Unpushed values are logged, not kept."""
        self._closing = True
        flusher, self._flusher = self._flusher, None
        try:
            await _cancel(self._syncer)
            self._syncer = None
            self._wake.set()
            if flusher is not None and not flusher.done():
                deadline = asyncio.create_task(self._clock.sleep(self._drain_timeout))
                try:
                    await asyncio.wait({flusher, deadline}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    await _cancel(deadline)
                if not flusher.done():
                    self._log.warning(
                        "channel drain timed out",
                        unpushed=len(self._pending) + len(self._inflight),
                        timeout_s=self._drain_timeout,
                    )
        finally:
            await _cancel(flusher)
        if flusher is not None and not flusher.cancelled():
            error = flusher.exception()
            if error is not None:
                raise error

    # --- what callers may look at ---------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        """SKUs waiting to be pushed (not counting the batch in flight)."""
        return len(self._pending)

    @property
    def busy(self) -> bool:
        """True while anything is pending, in flight or being synced (do not passivate)."""
        syncing = self._syncer is not None and not self._syncer.done()
        return bool(self._pending or self._inflight or syncing)

    async def pushed(self, sku: str) -> tuple[int, int] | None:
        """What the channel last acknowledged for ``sku``: (available, version), or None."""
        return _parse_pushed(await self._redis.hget(self._hash, sku))

    # --- pending: latest version wins -----------------------------------------------------------

    def _offer(self, update: AvailabilityChanged, *, requeue: bool = False) -> bool:
        """Put ``update`` in pending unless a newer value is pending or in flight.

        A requeued (failed) value also yields to a pending one of the same version: that one
        arrived later, so it is the fresher word for that version.
        """
        inflight = self._inflight.get(update.sku)
        if not requeue and inflight is not None and update.version < inflight.version:
            return False
        current = self._pending.get(update.sku)
        if current is not None and (
            update.version < current.version or (requeue and update.version == current.version)
        ):
            return False
        self._pending[update.sku] = update
        self._pending_changed()
        return True

    def _take(self, n: int) -> list[AvailabilityChanged]:
        batch = [self._pending.pop(sku) for sku in list(itertools.islice(self._pending, n))]
        self._pending_changed()
        self._space.set()
        return batch

    def _pending_changed(self) -> None:
        self._pending_gauge.set(len(self._pending))
        if self._pending:
            self._wake.set()

    # --- the flusher ----------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self.breaker.retry_in()
            if wait > 0:
                # Open: no requests; pending keeps coalescing meanwhile (one value per SKU).
                await self._clock.sleep(wait)
                continue
            taken = self._take(self._batch_size)
            # In flight from here: an older value arriving meanwhile is refused at once.
            self._inflight = {u.sku: u for u in taken}
            try:
                batch = await self._unsent(taken)
                if not batch:
                    continue
                await self.bucket.acquire()
                # Values that arrived while we waited for a token are fresher: send those.
                batch = [self._pending.pop(u.sku, u) for u in batch]
                self._pending_changed()
                self._inflight = {u.sku: u for u in batch}
                if not self.breaker.allow():
                    self._requeue(batch)
                    continue
                delay = await self._push(batch)
            finally:
                self._inflight = {}
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
            self._requeue(batch)
            self._attempt += 1
            await self._clock.sleep(self._backoff())
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
            self.breaker.failure()
            return await self._settle(batch, _all(batch, "retryable", exc))
        except Permanent as exc:
            results = _all(batch, "permanent", exc)
        except (Retryable, ChannelError) as exc:  # a bare ChannelError is taken as transient
            self.breaker.failure()
            return await self._settle(batch, _all(batch, "retryable", exc))
        except Exception as exc:
            # An adapter bug must not kill the flusher and lose what is pending: retried, and
            # logged with its traceback for whoever fixes the adapter.
            self._log.exception("adapter_push_crashed", skus=len(batch))
            self.breaker.failure()
            crashed = Retryable(f"adapter error: {type(exc).__name__}: {exc}")
            return await self._settle(batch, _all(batch, "retryable", crashed))
        self.breaker.success()  # the channel answered, whatever it said
        return await self._settle(batch, results)

    async def _settle(
        self, batch: list[AvailabilityChanged], results: Sequence[PushResult]
    ) -> float:
        """Record, requeue or drop each SKU of a pushed batch; returns how long to back off."""
        by_sku = {r.sku: r for r in results}
        ok: list[AvailabilityChanged] = []
        throttled: list[PushResult] = []
        retry: list[PushResult] = []
        refused: list[PushResult] = []
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
                    self._offer(update, requeue=True)
                case "retryable":
                    retry.append(result)
                    self._offer(update, requeue=True)
                case "permanent":
                    refused.append(result)
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
            self.bucket.recover()
        elif retry or throttled:
            self._attempt += 1

        for result in refused:
            error = result.error or "refused by the channel"
            self._log.error("channel refused update", sku=result.sku, error=error)
            outcome = self.on_permanent(result.sku, error)
            if inspect.isawaitable(outcome):
                await outcome

        if throttled:
            hint = max(r.retry_after or 0.0 for r in throttled)
            pause = hint or max(1.0 / self.bucket.rate, self._backoff())
            self.bucket.pause_until(self._clock.now() + pause)
            self.bucket.slow_down()
            self._log.info("channel throttled", pause_s=round(pause, 3), rate=self.bucket.rate)
        if retry and not ok:
            hint = max(r.retry_after or 0.0 for r in retry)
            delay = max(hint, self._backoff())
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
            self._log.warning("cannot record pushed values", skus=len(values), error=str(exc))

    def _requeue(self, batch: Iterable[AvailabilityChanged]) -> None:
        for update in batch:
            self._offer(update, requeue=True)

    def _backoff(self, attempt: int | None = None) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        n = self._attempt if attempt is None else attempt
        return self._rng.uniform(0, min(self._backoff_cap, self._backoff_base * 2 ** min(n, 32)))

    def _breaker_changed(self, state: BreakerState) -> None:
        self._breaker_gauge.set(0 if state is BreakerState.CLOSED else 1)
        self._log.warning(
            "channel breaker " + state.value,
            failures=self.breaker.failures,
            cooldown_s=self.breaker.cooldown,
        )

    # --- full sync ------------------------------------------------------------------------------

    async def _sync(self) -> None:
        values = self._current_values()
        queued = 0
        try:
            async for update in values:
                while len(self._pending) >= self._lookahead:
                    self._space.clear()
                    await self._space.wait()
                self._offer(update)
                queued += 1
        finally:
            aclose = getattr(values, "aclose", None)
            if aclose is not None:
                await aclose()
        self._log.info("full sync queued", skus=queued)

    async def _raise_if_crashed(self) -> None:
        # A crashed task fails the actor, so its supervisor restarts it; on_passivate is not
        # called on a crashed instance, hence the clean-up here.
        for task in (self._flusher, self._syncer):
            if task is not None and task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    await _cancel(self._flusher)
                    await _cancel(self._syncer)
                    raise error


def _all(batch: list[AvailabilityChanged], outcome: Outcome, exc: ChannelError) -> list[PushResult]:
    return [
        PushResult(sku=u.sku, outcome=outcome, retry_after=exc.retry_after, error=exc.message)
        for u in batch
    ]


async def _cancel(task: asyncio.Future[None] | None) -> None:
    """Cancel ``task`` and wait for it; our own cancellation still propagates."""
    if task is None or task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
