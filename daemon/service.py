"""The long-running process of ``invsync run``: wiring, life cycle, reload and shutdown.

Start-up: the store (embedded Valkey by default), the engine, the actor system (SKU and channel
actors), the intake consumer, the HTTP server, MQTT intake when configured, then READY=1.
SIGHUP reloads the config (channels added, removed or changed; an invalid file is refused and the
old config keeps running). SIGTERM/SIGINT: stop intake (HTTP, MQTT, the stream consumer), drain
mailboxes, flush channel actors within a bound, stop the store, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
import structlog
from redis.exceptions import RedisError

from ..actors.breaker import BreakerState
from ..actors.channel import ChannelActor
from ..actors.messages import AvailabilityChanged, FullSync, Recompute, StockChanged
from ..actors.runtime import ActorSystem, Kind
from ..actors.sku import SkuActor, Topology, bundle_inputs
from ..adapters.base import (
    AdapterContext,
    CancelsOrders,
    ChannelAdapter,
    OrderLine,
    Permanent,
    ReadsBack,
)
from ..adapters.registry import make_adapter
from ..core.clock import Clock, SystemClock
from ..core.config import Channel, Config, ConfigError, resolve_secret
from ..core.errors import InvsyncError, StoreUnavailable
from ..core.events import BadEvent, Event
from ..engine import keys
from ..engine.availability import availability_by_channel, bundle_available
from ..engine.connection import Store, redact
from ..engine.engine import Engine
from ..engine.models import SkuState
from ..metrics import definitions as m
from . import systemd
from .config import load_config
from .drift import DriftReport, check_channel, drift_routes
from .exceptions import ExceptionQueue, ExceptionRecord, exception_routes
from .feed import FeedHub
from .intake import Intake
from .processor import Processor
from .stockview import stock_view

log = structlog.get_logger("invsync.daemon")

SKU_IDLE_S = 60.0
#: Environment variable that overrides SKU_IDLE_S (seconds > 0): read once, by Daemon().
SKU_IDLE_ENV = "INVSYNC_SKU_IDLE_S"
SKU_MAILBOX = 1000
CHANNEL_MAILBOX = 10_000
DRAIN_TIMEOUT_S = 20.0
SLOW_STOP_S = 8.0


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and see them end. A cancellation can be swallowed (asyncio.wait_for on
    Python 3.11 does it when the awaited call finishes at the same moment, and so may a library
    that turns it into its own error), so cancel again until each task has really ended."""
    for task in tasks:
        task.cancel()
    for _ in range(100):
        pending = [task for task in tasks if not task.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=0.1)
        for task in pending:
            task.cancel()
    log.error("tasks_would_not_stop", tasks=[t.get_name() for t in tasks if not t.done()])


def _log_pending_tasks() -> None:
    """Log every task still running, with the line it waits on (a slow shutdown's why)."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=8, file=out)
        log.warning("stop_waiting_on_task", task=task.get_name(), stack=out.getvalue())


def open_store(config: Config, *, owner: bool) -> Store:
    """The store the config names: ``[redis] url``, or the embedded Valkey in ``data_dir``."""
    return Store(
        config.redis.url,
        config.redis.data_dir,
        owner=owner,
        connect_timeout=config.redis.connect_timeout_s,
        op_timeout=config.redis.op_timeout_s,
        password=resolve_secret(config.redis.password_env),
    )


def open_engine(config: Config, store: Store) -> Engine:
    """An engine on ``store`` with the config's bundles, safety stock and idempotency TTL."""
    return Engine(
        store.redis,
        idempotency_ttl_s=config.redis.idempotency_ttl_s,
        bundles=config.bundle_map(),
        safety_stock={loc.id: loc.safety_stock for loc in config.locations},
        op_timeout=config.redis.op_timeout_s,
    )


async def reap_holds(engine: Engine, *, interval_s: float = 1.0) -> None:
    """Release lapsed holds every ``interval_s``; a store outage is logged and retried."""
    while True:
        try:
            for outcome in await engine.expire_holds():
                if outcome.order is not None:
                    log.info("hold_expired", hold=outcome.order.order_id)
        except InvsyncError as exc:
            log.warning("hold_reaper_failed", code=exc.code, error=exc.message)
        await asyncio.sleep(interval_s)


def _event_id_in(payload: bytes) -> str | None:
    """The ``id`` of a refused event payload when it has a usable one (for the record)."""
    try:
        decoded = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    first = decoded[0] if isinstance(decoded, list) and decoded else decoded
    value = first.get("id") if isinstance(first, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


def check_refs(config: Config, events: list[Event]) -> None:
    """Refuse events naming a location or channel the config does not know (nothing recorded):
    the HTTP API's check, as a BadEvent for intakes that have no HTTP status to answer with."""
    from .http import check_references

    try:
        check_references(config, events)
    except InvsyncError as exc:
        raise BadEvent(exc.message) from exc


class _Intake(Intake):
    """The intake stream, telling the processor which entry now stands for each event id (so a
    re-sent id is waited for afresh, not answered with the outcome of its first send)."""

    processor: Processor | None = None

    async def append(self, events: Sequence[Event], *, source: str) -> list[str]:
        """Record ``events`` atomically (see ``Intake.append``)."""
        ids = await super().append(events, source=source)
        if self.processor is not None:
            self.processor.expect([event.id for event in events], ids)
        return ids


def sku_idle_s() -> float:
    """How long a SKU actor stays active without messages: ``$INVSYNC_SKU_IDLE_S`` or
    SKU_IDLE_S (an unusable value is logged and the default kept)."""
    raw = os.environ.get(SKU_IDLE_ENV, "").strip()
    if not raw:
        return SKU_IDLE_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        log.warning(
            "sku_idle_ignored",
            variable=SKU_IDLE_ENV,
            reason=f"must be a number of seconds > 0, got {raw!r}",
            using_s=SKU_IDLE_S,
        )
        return SKU_IDLE_S
    return value


def _channel_identity(channel: Channel) -> tuple[Any, ...]:
    """What, when changed, needs a new channel actor (not just a re-sync)."""
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


class Daemon:
    """The running daemon; also the ``DaemonContext`` its HTTP API and MQTT intake see."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._sku_idle_s = sku_idle_s()
        self._engine: Engine | None = None
        self._intake: Intake | None = None
        self._system: ActorSystem | None = None
        self._processor: Processor | None = None
        self._exceptions: ExceptionQueue | None = None
        self._feed: FeedHub | None = None
        self._session: aiohttp.ClientSession | None = None
        self._adapters: dict[str, ChannelAdapter] = {}
        self._channels: dict[str, Channel] = {}
        self._channel_instances: dict[str, ChannelActor] = {}
        self._stopping: set[str] = set()  # channels being stopped (out of the topology)
        self._topology = Topology.build({}, config.bundle_map())
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._consumer_stop = asyncio.Event()
        self._ready = False
        self.http_port: int | None = None

    # -- DaemonContext ----------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The config in force."""
        return self._config

    @property
    def engine(self) -> Engine:
        """The engine (only while running)."""
        assert self._engine is not None, "daemon not running"
        return self._engine

    @property
    def intake(self) -> Intake:
        """The intake stream (only while running)."""
        assert self._intake is not None, "daemon not running"
        return self._intake

    @property
    def adapters(self) -> Mapping[str, ChannelAdapter]:
        """Channel id -> adapter of every running channel."""
        return self._adapters

    @property
    def exceptions(self) -> ExceptionQueue:
        """The exception queue (only while running)."""
        assert self._exceptions is not None, "daemon not running"
        return self._exceptions

    def check_events(self, events: list[Event]) -> None:
        """Refuse events naming unknown locations or channels."""
        check_refs(self._config, events)

    async def readiness(self) -> dict[str, Any]:
        """Redis answers, actors and intake running, and each channel's breaker state."""
        checks: dict[str, dict[str, Any]] = {}
        try:
            async with asyncio.timeout(1.0):
                await self.engine.redis.ping()
            checks["redis"] = {"ok": True}
        except Exception as exc:
            checks["redis"] = {"ok": False, "error": str(exc) or type(exc).__name__}
        checks["actors"] = {
            "ok": self._system is not None and self._ready,
            "active": self._system.active() if self._system else 0,
        }
        checks["intake"] = {"ok": self._ready and not self._consumer_stop.is_set()}
        channels = {}
        for channel_id in self._adapters:
            actor = self._channel_actor(channel_id)
            state = actor.breaker.state.name.lower() if actor else "stopped"
            channels[channel_id] = {
                "breaker": state,
                "pending": actor.pending_count if actor else 0,
            }
        checks["channels"] = {"ok": True, "channels": channels}
        ready = all(c["ok"] for c in checks.values())
        return {"ready": ready, "checks": checks}

    async def stock_view(self, sku: str) -> dict[str, Any] | None:
        """``GET /v1/stock/{sku}``: states, availability and what each channel was last sent."""
        keys.check_sku(sku)
        state = await self.engine.stock(sku)
        bundle = self._config.bundle_map().get(sku)
        components: dict[str, SkuState | None] | None = None
        if bundle is not None:
            components = {c: await self.engine.stock(c) for c in bundle.components}
        elif state is None:
            return None
        view = stock_view(self._config, sku, state, components)
        for channel_id, entry in view["channels"].items():
            parsed = keys.parse_pushed(await self.engine.redis.hget(keys.pushed(channel_id), sku))
            if parsed is not None:
                entry["pushed"], entry["pushed_version"], entry["pushed_ms"] = parsed
        return view

    async def order_view(self, channel: str, order_id: str) -> dict[str, Any] | None:
        """An order's record, or the record of an order that could not be reserved."""
        order = await self.engine.order(channel, order_id)
        routing_raw = await self.engine.redis.get(keys.routing(channel, order_id))
        routing = msgspec.json.decode(routing_raw) if routing_raw is not None else None
        if order is not None:
            view: dict[str, Any] = msgspec.to_builtins(order)
            view["outcome"] = "reserved"
            view["routing"] = routing
            return view
        raw = await self.engine.redis.get(keys.rejection(channel, order_id))
        if raw is None:
            return None
        rejected: dict[str, Any] = msgspec.json.decode(raw)
        rejected["outcome"] = "rejected"
        rejected["routing"] = routing
        return rejected

    async def wait_processed(self, event_ids: list[str], timeout: float) -> dict[str, Any]:
        """Event id -> outcome, waiting at most ``timeout`` seconds."""
        assert self._processor is not None
        return await self._processor.wait_processed(event_ids, timeout)

    # -- channels ---------------------------------------------------------------------------

    def _channel_actor(self, channel_id: str) -> ChannelActor | None:
        return self._channel_instances.get(channel_id)

    def _make_channel_actor(self, key: str) -> ChannelActor:
        channel_id = key.partition(":")[2]
        channel = self._channels[channel_id]
        actor = ChannelActor(
            key,
            channel,
            self._adapters[channel_id],
            self.engine.redis,
            self._clock,
            lambda: self._current_values(channel_id),
        )
        self._channel_instances[channel_id] = actor  # the latest instance (restarts replace it)
        own = actor.breaker.on_change

        def breaker_changed(state: BreakerState) -> None:
            if own is not None:
                own(state)
            if self._exceptions is not None:
                self._exceptions.breaker_changed(channel_id, state is BreakerState.CLOSED)

        actor.breaker.on_change = breaker_changed  # outages become channel_unreachable records
        return actor

    # -- what resolving an exception does to channels ---------------------------------------

    def _cancel_support(self, channel_id: str) -> tuple[bool, str]:
        """Whether the channel's adapter can be told of a cancelled order line."""
        adapter = self._adapters.get(channel_id)
        if isinstance(adapter, CancelsOrders):
            return True, ""
        channel = self._channels.get(channel_id)
        kind = channel.kind if channel else "unknown"
        return False, f"the {kind} channel adapter has no order cancellation API: tell it by hand"

    async def _cancel_on_channel(
        self, channel_id: str, order_id: str, lines: list[tuple[str, int]] | None, reason: str
    ) -> None:
        """Cancel ``order_id`` (or its ``lines``) on the channel through its adapter."""
        adapter = self._adapters.get(channel_id)
        if not isinstance(adapter, CancelsOrders):
            raise Permanent(f"channel {channel_id!r} cannot cancel orders through its API")
        told = None if lines is None else [OrderLine(sku=s, qty=q) for s, q in lines]
        await adapter.cancel_order(order_id, told, reason)
        log.info("order_cancelled_on_channel", channel=channel_id, order_id=order_id)

    async def _repush(self, channel_id: str, sku: str | None) -> None:
        """Send our value of ``sku`` (or of every SKU) to the channel again."""
        assert self._system is not None
        if sku is None:
            await self._system.send(f"channel:{channel_id}", FullSync())
            return
        await self.engine.redis.hdel(keys.pushed(channel_id), sku)  # else it is "already sent"
        await self._system.send(f"sku:{sku}", Recompute(force=True, channels=(channel_id,)))

    async def _publish_exception(self, record: ExceptionRecord) -> None:
        """New and resolved exception records go to the live feed when one is wired."""
        if self._feed is not None:
            self._feed.publish_exception(msgspec.to_builtins(record))

    async def check_drift(
        self,
        channel_id: str,
        skus: list[str] | None = None,
        confirm_s: float | None = None,
        settle_s: float | None = None,
    ) -> DriftReport:
        """Read back ``channel_id`` now and report confirmed drift (``POST .../drift-check``)."""
        adapter = self._adapters.get(channel_id)
        if adapter is None:
            from .http import UnknownChannel

            raise UnknownChannel(f"no running channel {channel_id!r}")
        exceptions = self._config.exceptions
        return await check_channel(
            channel_id,
            adapter,
            self.engine.redis,
            self.exceptions.report_drift,
            confirm_s=exceptions.drift_confirm_s if confirm_s is None else confirm_s,
            settle_s=exceptions.drift_settle_s if settle_s is None else settle_s,
            skus=skus,
            wall_ms=self._clock.wall_ms,
        )

    async def _watch_drift(self) -> None:
        """Every ``drift_check_s``, every channel that can read back is checked, concurrently
        and each within the round: a slow or failing channel holds up no other."""
        while True:
            every = self._config.exceptions.drift_check_s
            await asyncio.sleep(every if every > 0 else 5.0)
            if every <= 0:
                continue
            channels = [
                ch for ch, adapter in self._adapters.items()
                if isinstance(adapter, ReadsBack) and ch not in self._stopping
            ]
            await asyncio.gather(*(self._drift_round(ch, every) for ch in channels))

    async def _drift_round(self, channel_id: str, within_s: float) -> None:
        try:
            async with asyncio.timeout(within_s):
                await self.check_drift(channel_id)
        except TimeoutError:
            log.warning("drift_check_failed", channel=channel_id,
                        error=f"not finished within {within_s:g} s (drift_check_s)")
        except Exception as exc:  # one channel's failure never stops the watcher
            log.warning("drift_check_failed", channel=channel_id, error=repr(exc))

    async def _bad_mqtt_message(self, topic: str, payload: bytes, error: str) -> None:
        """A refused MQTT message becomes a ``bad_event`` exception; its id is a digest of topic
        and payload, so a redelivered copy does not open a second record."""
        digest = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:16]
        event_id = _event_id_in(payload) or f"mqtt-{digest}"
        await self.exceptions.raise_bad_event(
            event_id, "MALFORMED_EVENT", f"{error} (payload: {payload[:200]!r})",
            source=f"mqtt:{topic}",
        )

    async def _watch_exceptions(self) -> None:
        while True:
            if self._exceptions is not None:
                try:
                    await self._exceptions.tick()
                except InvsyncError as exc:
                    log.warning("exception_tick_failed", code=exc.code, error=exc.message)
            await asyncio.sleep(0.5)

    async def _current_values(self, channel_id: str) -> AsyncIterator[AvailabilityChanged]:
        """Every SKU's (and bundle's) current value for one channel, for a full sync."""
        engine = self.engine
        topo = self._topology
        policy = topo.policies.get(channel_id)
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
            if len(chunk) >= 500:
                for update in await values(chunk):
                    yield update
                chunk = []
        for update in await values(chunk):
            yield update
        for bundle in topo.bundles.values():
            stocks, version = bundle_inputs(bundle, await engine.stocks(list(bundle.components)))
            yield AvailabilityChanged(
                sku=bundle.sku, available=bundle_available(bundle, stocks, policy), version=version
            )

    def _adapter_context(self) -> AdapterContext:
        assert self._session is not None
        return AdapterContext(
            session=self._session,
            redis=self.engine.redis,
            ingest=self.ingest,
            mqtt=self._config.mqtt if self._config.mqtt.url else None,
            base_dir=self._config.source.parent,
            clock=self._clock,
        )

    async def ingest(self, events: list[Event], source: str) -> list[str]:
        """Record events an adapter fetched from its channel (orders it polled), as a webhook
        would; raises BadEvent or an InvsyncError like the HTTP intake."""
        from .http import record_events, typed_events

        return await record_events(self, typed_events(events), source)

    async def _start_channel(self, channel: Channel) -> None:
        assert self._session is not None and self._system is not None
        try:
            adapter = make_adapter(channel, self._adapter_context())
        except ValueError as exc:
            log.error("channel_not_started", channel=channel.id, reason=str(exc))
            return
        if adapter is None:
            log.warning(
                "channel_without_adapter",
                channel=channel.id,
                kind=channel.kind,
                reason=f"no adapter for kind {channel.kind!r} in this version",
            )
            return
        self._channels[channel.id] = channel
        self._adapters[channel.id] = adapter
        m.touch_channel(channel.id)  # every per-channel series exists (at 0) from now on
        # Before the FullSync: its value stream reads the channel's policy from the topology,
        # and a reload may yield (stopping another channel) before it rebuilds the topology.
        self._rebuild_topology()
        await self._system.send(f"channel:{channel.id}", FullSync())
        log.info("channel_started", channel=channel.id, kind=channel.kind)

    async def _stop_channel(self, channel_id: str) -> None:
        assert self._system is not None
        key = f"channel:{channel_id}"
        # SKU actors stop sending to it first; a message sent while it drains would otherwise
        # re-activate it (with the old settings) after the stop, for good.
        self._stopping.add(channel_id)
        self._rebuild_topology()
        try:
            await self._system.stop(key, drain=True)
            while key in self._system.keys("channel"):  # re-activated by a publish in flight
                await self._system.stop(key, drain=True)
        finally:
            self._stopping.discard(channel_id)
        adapter = self._adapters.pop(channel_id, None)
        m.forget_channel(channel_id)
        self._channels.pop(channel_id, None)
        self._channel_instances.pop(channel_id, None)
        if adapter is not None:
            await adapter.aclose()
        log.info("channel_stopped", channel=channel_id)

    def _rebuild_topology(self) -> None:
        policies = self._config.policies()
        running = {
            ch: p for ch, p in policies.items() if ch in self._adapters and ch not in self._stopping
        }
        self._topology = Topology.build(running, self._config.bundle_map())

    # -- reload -----------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Apply the config file again; an invalid file is refused (old config keeps running)."""
        systemd.reloading()
        try:
            new = load_config(self._config.source)
        except ConfigError as exc:
            log.error("reload_refused", reason=str(exc))
            systemd.notify("READY=1", "STATUS=reload refused: invalid config")
            return False
        old = self._config
        for section in ("redis", "server", "mqtt", "metrics"):
            if getattr(old, section) != getattr(new, section):
                log.warning(
                    "reload_needs_restart",
                    section=section,
                    reason=f"[{section}] changes take effect at the next start",
                )
        old_channels = {ch.id: ch for ch in old.channels if ch.enabled}
        new_channels = {ch.id: ch for ch in new.channels if ch.enabled}
        old_policies, new_policies = old.policies(), new.policies()
        self._config = msgspec.structs.replace(
            new, redis=old.redis, server=old.server, mqtt=old.mqtt, metrics=old.metrics
        )
        assert self._engine is not None
        self._engine.bundles = self._config.bundle_map()
        self._engine.safety_stock = {loc.id: loc.safety_stock for loc in self._config.locations}
        for channel_id in old_channels.keys() - new_channels.keys():
            if channel_id in self._adapters:
                await self._stop_channel(channel_id)
        resync: list[str] = []
        for channel_id, channel in new_channels.items():
            before = old_channels.get(channel_id)
            if before is not None and channel_id in self._adapters:
                if _channel_identity(before) != _channel_identity(channel):
                    await self._stop_channel(channel_id)
                elif old_policies.get(channel_id) != new_policies.get(channel_id):
                    resync.append(channel_id)
                    continue
                else:
                    continue
            await self._start_channel(channel)  # new, or restarted with new settings
        self._rebuild_topology()
        assert self._system is not None
        for channel_id in resync:
            await self._system.send(f"channel:{channel_id}", FullSync())
        if old.bundle_map() != new.bundle_map():
            for channel_id in self._adapters:
                await self._system.send(f"channel:{channel_id}", FullSync())
        log.info("reloaded", channels=sorted(self._adapters), resynced=resync)
        systemd.notify("READY=1", f"STATUS=running, {len(self._adapters)} channel(s)")
        return True

    # -- the run ----------------------------------------------------------------------------

    async def _notify_sku(self, state: SkuState, accepted_ms: int) -> None:
        assert self._system is not None
        await self._system.send(
            f"sku:{state.sku}", StockChanged(state=state, accepted_ms=accepted_ms)
        )

    async def _sample_metrics(self) -> None:
        while True:
            system = self._system
            if system is not None:
                for kind in ("sku", "channel"):
                    m.ACTORS_ACTIVE.labels(kind=kind).set(system.active(kind))
                    m.MAILBOX_DEPTH.labels(kind=kind).set(system.mailbox_depth(kind))
            if self._intake is not None:
                with contextlib.suppress(Exception):
                    m.INTAKE_LAG.set(await self._intake.lag_seconds())
            if self._engine is not None:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # cancellation that stops this task (and the daemon then never exits).
                try:
                    async with asyncio.timeout(1.0):
                        up = bool(await self._engine.redis.ping())
                except (RedisError, OSError, TimeoutError):
                    up = False
                m.REDIS_UP.set(1 if up else 0)
            await asyncio.sleep(1.0)

    async def _trim_intake(self) -> None:
        while True:
            await asyncio.sleep(30.0)
            if self._intake is not None:
                with contextlib.suppress(StoreUnavailable, ConnectionError, OSError):
                    await self._intake.trim()

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        from .feed import store_snapshot
        from .http import build_app
        from .page import page_routes
        from .server import HttpServer

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        config = self._config
        started = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            store = await stack.enter_async_context(open_store(config, owner=True))
            self._engine = await stack.enter_async_context(open_engine(config, store))
            # The feed outlives the actors and the HTTP server (entered before them).
            self._feed = await stack.enter_async_context(FeedHub(clock=self._clock))
            listeners = (self._feed.listener,)
            self._exceptions = ExceptionQueue(
                self._engine,
                lambda: self._config,
                cancel_support=self._cancel_support,
                cancel_on_channel=self._cancel_on_channel,
                repush=self._repush,
                publish=self._publish_exception,
                notify=self._notify_sku,
            )
            intake = self._intake = _Intake(store.redis)
            await intake.ensure_group()
            self._session = await stack.enter_async_context(aiohttp.ClientSession())
            self._system = await stack.enter_async_context(ActorSystem(clock=self._clock))
            self._system.register(
                Kind(
                    name="sku",
                    factory=lambda key: SkuActor(
                        key, self.engine, lambda: self._topology, lambda: listeners
                    ),
                    mailbox_size=SKU_MAILBOX,
                    idle_timeout_s=self._sku_idle_s,
                )
            )
            self._system.register(
                Kind(
                    name="channel",
                    factory=self._make_channel_actor,
                    mailbox_size=CHANNEL_MAILBOX,
                    idle_timeout_s=None,
                )
            )
            stack.push_async_callback(self._drain)
            for channel in config.channels:
                if channel.enabled:
                    await self._start_channel(channel)
            self._rebuild_topology()
            self._processor = Processor(
                self.engine, lambda: self._config, self._notify_sku, exceptions=self._exceptions
            )
            self._exceptions.reserve_again = self._processor.reserve_again
            intake.processor = self._processor
            group = await stack.enter_async_context(asyncio.TaskGroup())
            tasks = [
                group.create_task(
                    self.intake.consume(self._processor.handle_batch, stop=self._consumer_stop)
                ),
                group.create_task(reap_holds(self.engine)),
                group.create_task(systemd.watchdog()),
                group.create_task(self._sample_metrics()),
                group.create_task(self._trim_intake()),
                group.create_task(self._watch_exceptions()),
                group.create_task(self._watch_drift()),
            ]
            if config.mqtt.url is not None:
                from .mqtt_intake import run_mqtt_intake

                tasks.append(
                    group.create_task(
                        run_mqtt_intake(
                            lambda: self._config,
                            self.intake,
                            self.check_events,
                            on_bad=self._bad_mqtt_message,
                        )
                    )
                )
            feed_route = self._feed.route(store_snapshot(self.engine, lambda: self._topology))
            routes = [
                *exception_routes(lambda: self.exceptions),
                *drift_routes(self.check_drift),
                feed_route,
                *page_routes(),
            ]
            server = HttpServer(
                build_app(self, routes=routes), config.server.host, config.server.port
            )
            await server.__aenter__()
            self.http_port = server.port
            self._ready = True
            systemd.notify("READY=1", f"STATUS=running, {len(self._adapters)} channel(s)")
            log.info(
                "started",
                store=redact(store.url),
                embedded=store.embedded is not None,
                http=f"{config.server.host}:{server.port}",
                channels=sorted(self._adapters),
                startup_s=round(time.monotonic() - started, 3),
            )
            try:
                while not self._stop.is_set():
                    reload_wait = asyncio.ensure_future(self._reload.wait())
                    stop_wait = asyncio.ensure_future(self._stop.wait())
                    await asyncio.wait(
                        {reload_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED
                    )
                    reload_wait.cancel()
                    stop_wait.cancel()
                    if self._reload.is_set() and not self._stop.is_set():
                        self._reload.clear()
                        await self.reload()
            finally:
                systemd.notify("STOPPING=1")
                log.info("stopping")
                # If stopping takes long, say what it waits for (each task and where it is).
                asyncio.get_running_loop().call_later(SLOW_STOP_S, _log_pending_tasks)
                self._ready = False
                await server.__aexit__(None, None, None)  # no new HTTP intake
                self._consumer_stop.set()  # the consumer finishes its batch and returns
                await tasks[0]
                await _cancel_all(tasks[1:])
        log.info("stopped")
        return 0

    async def _drain(self) -> None:
        """Drain every mailbox and flush channel actors, bounded by DRAIN_TIMEOUT_S."""
        assert self._system is not None
        drained = await self._system.drain(DRAIN_TIMEOUT_S)
        if not drained:
            log.warning("drain_timed_out", timeout_s=DRAIN_TIMEOUT_S)
        for adapter in self._adapters.values():
            await adapter.aclose()


async def serve(config: Config) -> int:
    """Run the daemon on ``config`` until SIGTERM or SIGINT; returns the exit code."""
    code = 1
    try:
        code = await Daemon(config).run()
    except* InvsyncError as group:
        for exc in group.exceptions:
            assert isinstance(exc, InvsyncError)
            log.error("daemon_failed", code=exc.code, error=exc.message)
    return code
