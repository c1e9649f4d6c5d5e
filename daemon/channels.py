"""The channel manager: one supervised worker per running channel, and the channels' topology.

Every running channel has a slot: its settings and policy, its adapter, its ``ChannelState``
(pending values, breaker, rate limiter) and the task that supervises its workers. The tasks
belong to the manager's TaskGroup (the manager is an async context manager in the daemon's
stack); leaving it drains every channel, each within its worker's bound.

Supervision: a worker that raises ``WorkerCrashed`` is logged (``channel_worker_crashed``), its
in-flight batch goes back to pending, and after a backoff (``core.retry.Backoff`` on the
injectable clock) a new worker runs on the same state, with a full sync. Values offered
meanwhile wait in the state: a crash loses nothing. A SKU the channel refuses for good is told
to ``on_refused`` (the daemon raises a ``push_refused`` incident).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Self

import structlog
from redis.exceptions import RedisError

from ..actors.breaker import BreakerState
from ..actors.channel import ChannelState, ChannelWorker, WorkerCrashed
from ..actors.messages import AvailabilityChanged, FullSync
from ..actors.sku import Topology, bundle_inputs
from ..adapters.base import (
    CancelsOrders,
    ChannelAdapter,
    OrderLine,
    Permanent,
    RunsInBackground,
)
from ..core.clock import Clock
from ..core.config import Channel
from ..core.errors import InvsyncError
from ..core.retry import Backoff
from ..engine.availability import Bundle, ChannelPolicy, availability_by_channel, bundle_available
from ..engine.engine import Engine
from ..engine.pending import save_pending
from ..metrics import definitions as m

__all__ = [
    "ChannelManager",
    "ChannelNotStarted",
    "ChannelsMissing",
    "MakeAdapter",
    "OnBreaker",
    "OnRefused",
    "channel_identity",
    "current_values",
]

log = structlog.get_logger("invsync.channels")

#: Builds a channel's adapter; None when its kind has none; ValueError when its config cannot
#: work (``MissingSecret`` names the variable).
MakeAdapter = Callable[[Channel], ChannelAdapter | None]
#: Told of every SKU a channel refuses for good: (channel, sku, available, reason).
OnRefused = Callable[[str, str, int, str], Awaitable[object]]
#: Told of every breaker transition of a channel: (channel, closed).
OnBreaker = Callable[[str, bool], None]

#: Restart backoff of a crashed worker: 0.5 s at first, 30 s at most, never at once.
RESTART_BACKOFF = Backoff(0.5, 30.0, jitter="equal")
#: A worker that ran this long before crashing starts the restart backoff afresh.
STABLE_AFTER_S = 60.0
#: How many SKUs one store read of a full sync asks for.
SYNC_CHUNK = 500


def _describe(error: BaseException) -> str:
    # Not repr(): redis-py's errors repr as "server:ResponseError", without their message.
    return f"{type(error).__name__}: {error}"


class ChannelNotStarted(Exception):
    """A channel's config cannot work (a missing secret, a bad option, no adapter for its kind):
    ``reason`` says why. Nothing of it runs (and a channel it was to replace keeps running)."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"channel {channel!r} not started: {reason}")
        self.channel = channel
        self.reason = reason


class ChannelsMissing(InvsyncError):
    """Start-up refused: channels that are not ``optional`` could not start (a credential
    variable unset, most often); the message names each one and why."""

    code = "CHANNEL_NOT_STARTED"

    def __init__(self, failures: Mapping[str, str]) -> None:
        reasons = "; ".join(f"{reason}" for reason in failures.values())
        super().__init__(
            f"{len(failures)} channel(s) cannot start: {reasons}. Set the variable(s), disable "
            "the channel (enabled = false) or mark it optional = true to start without it"
        )
        self.failures = dict(failures)


def channel_identity(channel: Channel) -> tuple[Any, ...]:
    """What, when changed, needs a new adapter and worker (not just a re-sync)."""
    return (
        channel.kind,
        channel.url,
        channel.token_env,
        channel.secret_env,
        channel.rate_limit_per_s,
        channel.burst,
        channel.batch_size,
        tuple(sorted(channel.options.items())),
    )


async def current_values(
    engine: Engine, topology: Topology, channel_id: str
) -> AsyncIterator[AvailabilityChanged]:
    """Every SKU's (and bundle's) current value for one channel under ``topology``, for a full
    sync; nothing when the channel is not in it."""
    policy = topology.policies.get(channel_id)
    if policy is None:
        return
    only = {channel_id: policy}

    async def values(skus: list[str]) -> list[AvailabilityChanged]:
        states = await engine.stocks(skus)
        return [
            AvailabilityChanged(
                sku=sku,
                available=availability_by_channel(state.stock(), only)[channel_id],
                version=state.version,
            )
            for sku, state in states.items()
        ]

    chunk: list[str] = []
    async for sku in engine.skus():
        chunk.append(sku)
        if len(chunk) >= SYNC_CHUNK:
            for update in await values(chunk):
                yield update
            chunk = []
    for update in await values(chunk):
        yield update
    for bundle in topology.bundles.values():
        stocks, version = bundle_inputs(bundle, await engine.stocks(list(bundle.components)))
        yield AvailabilityChanged(
            sku=bundle.sku, available=bundle_available(bundle, stocks, policy), version=version
        )


class _Slot:
    """One running channel: what it runs with, and the task supervising its workers."""

    __slots__ = (
        "adapter",
        "background",
        "channel",
        "policy",
        "restarts",
        "state",
        "stopping",
        "task",
        "worker",
    )

    def __init__(
        self, channel: Channel, policy: ChannelPolicy, adapter: ChannelAdapter, state: ChannelState
    ) -> None:
        self.channel = channel
        self.policy = policy
        self.adapter = adapter
        self.state = state
        self.stopping = asyncio.Event()
        self.worker: ChannelWorker | None = None  # None while restarting
        self.task: asyncio.Task[None] | None = None
        #: The adapter's own work (``RunsInBackground``: eBay's order poll), when it has some.
        self.background: asyncio.Task[None] | None = None
        self.restarts = 0


class ChannelManager:
    """Starts, stops, replaces and supervises channel workers; an async context manager that
    owns their tasks. Values for a channel are ``offer``ed here and never wait."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        make_adapter: MakeAdapter,
        bundles: Mapping[str, Bundle] | None = None,
        on_refused: OnRefused | None = None,
        on_breaker: OnBreaker | None = None,
        restart_backoff: Backoff = RESTART_BACKOFF,
        stable_after_s: float = STABLE_AFTER_S,
        push_backoff: Backoff | None = None,
        drain_timeout_s: float = 5.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._make_adapter = make_adapter
        self._bundles: Mapping[str, Bundle] = dict(bundles or {})
        self._on_refused = on_refused
        self._on_breaker = on_breaker
        self._restart_backoff = restart_backoff
        self._stable_after_s = stable_after_s
        self._push_backoff = push_backoff
        self._drain_timeout_s = drain_timeout_s
        self._slots: dict[str, _Slot] = {}
        self._adapters: dict[str, ChannelAdapter] = {}
        self._not_started: dict[str, str] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self.topology = Topology.build({}, self._bundles)

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tasks is not None
        try:
            if exc_type is None or issubclass(exc_type, Exception):
                await self._stop_all()
        finally:
            for slot in self._slots.values():
                if slot.task is not None:
                    slot.task.cancel()
                if slot.background is not None:
                    slot.background.cancel()
            # The body's own exception (if any) propagates unchanged: the group is told nothing.
            await self._tasks.__aexit__(None, None, None)
            for adapter in self._adapters.values():
                await adapter.aclose()
            self._adapters.clear()

    async def _stop_all(self) -> None:
        """Every channel drains at once, each within its bound."""
        slots = list(self._slots.values())
        for slot in slots:
            self._ask_to_stop(slot)
        self._rebuild()
        for slot in slots:
            if slot.task is not None:
                await slot.task
            if slot.background is not None:
                await slot.background

    # --- what runs ------------------------------------------------------------------------------

    @property
    def adapters(self) -> Mapping[str, ChannelAdapter]:
        """Channel id -> adapter of every running channel (a live, read-only view)."""
        return MappingProxyType(self._adapters)

    def running(self) -> dict[str, Channel]:
        """Channel id -> the settings it runs with, for channels not being stopped."""
        return {ch: s.channel for ch, s in self._slots.items() if not s.stopping.is_set()}

    def live_adapters(self) -> dict[str, ChannelAdapter]:
        """Adapters of the channels running and not being stopped (for drift checks)."""
        return {ch: s.adapter for ch, s in self._slots.items() if not s.stopping.is_set()}

    def policy(self, channel_id: str) -> ChannelPolicy | None:
        """The policy ``channel_id`` runs with, or None when it does not run."""
        slot = self._slots.get(channel_id)
        return slot.policy if slot is not None else None

    def workers(self) -> int:
        """Workers running now (a crashed one waiting for its restart does not count)."""
        return sum(1 for slot in self._slots.values() if slot.worker is not None)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per channel, for ``/readyz``: breaker state, pending SKUs, worker, restarts; an
        optional channel that could not start says so (``"worker": "not_started"``, why)."""
        status: dict[str, dict[str, Any]] = {
            channel_id: {"ready": False, "worker": "not_started", "reason": reason}
            for channel_id, reason in self._not_started.items()
        }
        for channel_id, slot in self._slots.items():
            status[channel_id] = {
                "ready": True,
                "breaker": slot.state.breaker.state.value,
                "pending": len(slot.state.pending),
                "worker": "running" if slot.worker is not None else "restarting",
                "restarts": slot.restarts,
            }
        return status

    @property
    def not_started(self) -> Mapping[str, str]:
        """Optional channels that could not start (channel id -> why), a live read-only view:
        ``/readyz`` names them and their webhooks answer 503 with the reason."""
        return MappingProxyType(self._not_started)

    def hold_back(self, channel_id: str, reason: str) -> None:
        """Record that the optional channel ``channel_id`` does not run, and why (a missing
        credential); the next successful ``start`` of it forgets the record."""
        self._not_started[channel_id] = reason

    # --- messages -------------------------------------------------------------------------------

    def offer(self, channel_id: str, update: AvailabilityChanged) -> None:
        """A new value for a channel (latest version wins); dropped when the channel does not
        run or is being stopped (a value sent to it then would reach a removed channel)."""
        slot = self._slots.get(channel_id)
        if slot is not None and not slot.stopping.is_set():
            slot.state.offer(update)

    def full_sync(self, channel_id: str) -> None:
        """Push every SKU's current value to the channel (a sync running is started over)."""
        slot = self._slots.get(channel_id)
        if slot is not None and not slot.stopping.is_set():
            slot.state.receive(FullSync())

    # --- starting and stopping ------------------------------------------------------------------

    def adapter_for(self, channel: Channel) -> ChannelAdapter:
        """A new adapter for ``channel``; ChannelNotStarted when its config cannot work."""
        try:
            adapter = self._make_adapter(channel)
        except ValueError as exc:
            raise ChannelNotStarted(channel.id, str(exc)) from exc
        if adapter is None:
            raise ChannelNotStarted(
                channel.id, f"no adapter for kind {channel.kind!r} in this version"
            )
        return adapter

    def start(
        self, channel: Channel, policy: ChannelPolicy, *, adapter: ChannelAdapter | None = None
    ) -> None:
        """Run ``channel`` (it must not run yet): its worker starts with a full sync.
        ChannelNotStarted when its adapter cannot be made (nothing runs then)."""
        assert self._tasks is not None, "the channel manager is not entered"
        if channel.id in self._slots:
            raise RuntimeError(f"channel {channel.id!r} already runs")
        adapter = adapter if adapter is not None else self.adapter_for(channel)
        state = ChannelState(channel, self._clock, on_breaker=self._breaker_hook(channel.id))
        slot = _Slot(channel, policy, adapter, state)
        self._slots[channel.id] = slot
        self._adapters[channel.id] = adapter
        self._not_started.pop(channel.id, None)
        m.touch_channel(channel.id)  # every per-channel series exists (at 0) from now on
        # Before the full sync: its value stream reads the channel's policy from the topology.
        self._rebuild()
        state.receive(FullSync())
        slot.task = self._tasks.create_task(self._supervise(slot), name=f"channel {channel.id}")
        if isinstance(adapter, RunsInBackground):
            slot.background = self._tasks.create_task(
                self._run_background(slot, adapter), name=f"channel {channel.id} background"
            )
        log.info("channel_started", channel=channel.id, kind=channel.kind)

    async def stop(self, channel_id: str, *, keep_pending: bool = False) -> None:
        """Stop a running channel: nothing more is offered to it, what is pending is pushed
        within the drain bound, its adapter is closed and its metrics forgotten. What it could
        not push is dropped from the store unless ``keep_pending`` (the channel is replaced:
        its next worker pushes them)."""
        self._not_started.pop(channel_id, None)
        slot = self._slots.get(channel_id)
        if slot is None:
            return
        self._ask_to_stop(slot)
        self._rebuild()  # SKU actors stop computing values for it
        if slot.task is not None:
            await slot.task
        if slot.background is not None:
            await slot.background
        del self._slots[channel_id]
        self._adapters.pop(channel_id, None)
        m.forget_channel(channel_id)
        if not keep_pending:
            await self._drop_pending(channel_id)
        await slot.adapter.aclose()
        log.info("channel_stopped", channel=channel_id)

    async def replace(self, channel: Channel, policy: ChannelPolicy) -> None:
        """Run ``channel`` with new connection settings. The new adapter is made first: when it
        cannot be (ChannelNotStarted), the running channel is left as it was."""
        adapter = self.adapter_for(channel)
        try:
            await self.stop(channel.id, keep_pending=True)
        except BaseException:
            await adapter.aclose()
            raise
        self.start(channel, policy, adapter=adapter)

    async def _drop_pending(self, channel_id: str) -> None:
        """A removed channel's kept values would be stale if it came back: dropped."""
        try:
            await save_pending(self._engine.redis, channel_id, ())
        except RedisError as exc:
            log.warning("channel_pending_not_dropped", channel=channel_id, error=str(exc))

    def set_policy(self, channel_id: str, policy: ChannelPolicy) -> None:
        """A running channel's new allocation policy (the caller asks for the re-sync)."""
        slot = self._slots.get(channel_id)
        if slot is not None:
            slot.policy = policy
            self._rebuild()

    def set_bundles(self, bundles: Mapping[str, Bundle]) -> None:
        """New bundle definitions (the caller asks for the re-syncs)."""
        self._bundles = dict(bundles)
        self._rebuild()

    def _ask_to_stop(self, slot: _Slot) -> None:
        slot.stopping.set()
        if slot.worker is not None:
            slot.worker.close()

    def _rebuild(self) -> None:
        running = {ch: s.policy for ch, s in self._slots.items() if not s.stopping.is_set()}
        self.topology = Topology.build(running, self._bundles)

    # --- supervision ----------------------------------------------------------------------------

    async def _supervise(self, slot: _Slot) -> None:
        """Run workers on the slot's state until it is stopped; restart a crashed one."""
        failures = 0  # crashes in a row (a worker that ran STABLE_AFTER_S resets the count)
        while True:
            worker = slot.worker = self._worker(slot)
            if slot.stopping.is_set():
                worker.close()
            began = self._clock.now()
            try:
                await worker.run()
                return
            except WorkerCrashed as crash:
                if self._clock.now() - began >= self._stable_after_s:
                    failures = 0
                delay = self._crashed(slot, crash, failures)
            if delay is None:
                return
            failures += 1
            await self._pause(slot, delay)
            # Whatever the crash left unrecorded is found again by a full sync.
            slot.state.receive(FullSync())
            log.info("channel_worker_restarted", channel=slot.channel.id, restarts=slot.restarts)

    async def _run_background(self, slot: _Slot, runner: RunsInBackground) -> None:
        """The adapter's background work while the channel runs: restarted after the restart
        backoff when it raises (logged ``channel_background_crashed``), cancelled when the
        channel is asked to stop; done when ``run`` returns."""
        failures = 0
        while not slot.stopping.is_set():
            began = self._clock.now()
            work = asyncio.ensure_future(runner.run())
            stop = asyncio.ensure_future(slot.stopping.wait())
            try:
                await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                work.cancel()  # nothing when it is done
                await asyncio.wait({work, stop})
            if work.cancelled():
                return
            error = work.exception()
            if error is None:
                return
            if self._clock.now() - began >= self._stable_after_s:
                failures = 0
            delay = self._restart_backoff.delay(failures)
            failures += 1
            log.error(
                "channel_background_crashed",
                channel=slot.channel.id,
                error=_describe(error),
                restart_in_s=round(delay, 3),
                exc_info=error,
            )
            await self._pause(slot, delay)

    def _crashed(self, slot: _Slot, crash: WorkerCrashed, failures: int) -> float | None:
        """Count and log a crash, requeue what was in flight; the delay before the restart, or
        None when the channel is being stopped (no restart)."""
        slot.worker = None
        slot.restarts += 1
        m.CHANNEL_RESTARTS.labels(channel=slot.channel.id).inc()
        requeued = slot.state.recover()
        if slot.stopping.is_set():
            # A crash while draining: what is left is pushed by the sync of the next start.
            log.error(
                "channel_drain_crashed",
                channel=slot.channel.id,
                error=_describe(crash.cause),
                unpushed=slot.state.unpushed,
                exc_info=crash.cause,
            )
            return None
        delay = self._restart_backoff.delay(failures)
        log.error(
            "channel_worker_crashed",
            channel=slot.channel.id,
            error=_describe(crash.cause),
            requeued=requeued,
            restarts=slot.restarts,
            restart_in_s=round(delay, 3),
            exc_info=crash.cause,
        )
        return delay

    async def _pause(self, slot: _Slot, seconds: float) -> None:
        """Sleep ``seconds`` on the clock, cut short when the slot is asked to stop."""
        async with asyncio.TaskGroup() as tasks:
            sleep = tasks.create_task(self._clock.sleep(seconds))
            stop = tasks.create_task(slot.stopping.wait())
            await asyncio.wait({sleep, stop}, return_when=asyncio.FIRST_COMPLETED)
            sleep.cancel()
            stop.cancel()

    def _worker(self, slot: _Slot) -> ChannelWorker:
        channel_id = slot.channel.id

        async def refused(sku: str, available: int, reason: str) -> None:
            if self._on_refused is not None:
                await self._on_refused(channel_id, sku, available, reason)

        return ChannelWorker(
            slot.channel,
            slot.adapter,
            self._engine.redis,
            self._clock,
            lambda: current_values(self._engine, self.topology, channel_id),
            state=slot.state,
            on_permanent=refused,
            drain_timeout=self._drain_timeout_s,
            backoff=self._push_backoff,
        )

    def _breaker_hook(self, channel_id: str) -> Callable[[BreakerState], None]:
        def changed(state: BreakerState) -> None:
            if self._on_breaker is not None:
                self._on_breaker(channel_id, state is BreakerState.CLOSED)

        return changed

    # --- what resolving an incident does to a channel -------------------------------------------

    def cancel_support(self, channel_id: str) -> tuple[bool, str]:
        """Whether the channel's adapter can be told of a cancelled order line (and if not,
        what to tell the operator)."""
        slot = self._slots.get(channel_id)
        if slot is not None and isinstance(slot.adapter, CancelsOrders):
            return True, ""
        kind = slot.channel.kind if slot is not None else "unknown"
        return False, f"the {kind} channel adapter has no order cancellation API: tell it by hand"

    async def cancel_on_channel(
        self, channel_id: str, order_id: str, lines: list[tuple[str, int]] | None, reason: str
    ) -> None:
        """Cancel ``order_id`` (or its ``lines``) on the channel through its adapter."""
        adapter = self._adapters.get(channel_id)
        if not isinstance(adapter, CancelsOrders):
            raise Permanent(f"channel {channel_id!r} cannot cancel orders through its API")
        told = None if lines is None else [OrderLine(sku=s, qty=q) for s, q in lines]
        await adapter.cancel_order(order_id, told, reason)
        log.info("order_cancelled_on_channel", channel=channel_id, order_id=order_id)
