"""The long-running process of ``invsync run``: the composition root.

``Daemon`` builds the parts and wires them, in this order: the store (embedded Valkey by
default), the engine, the live feed, the channel manager (supervised channel workers,
``daemon/channels.py``), the incident queue, the intake stream, the actor system (SKU actors),
the intake consumer, the periodic chores (``daemon/housekeeping.py``), the drift watch
(``daemon/drift.py``), the metrics sampler (``daemon/metrics_sampler.py``), MQTT intake when
configured and the HTTP server; then READY=1. It is also the ``DaemonContext`` the HTTP API sees.

SIGHUP reloads the config (``daemon/reload.py``). SIGTERM/SIGINT: stop intake (HTTP, MQTT, the
stream consumer), drain the SKU actors' mailboxes, drain the channels within their bound, stop
the store, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
import structlog

from ..actors.messages import Recompute, StockChanged
from ..actors.runtime import ActorSystem, Kind
from ..actors.sku import SkuActor
from ..adapters.base import AdapterContext, ChannelAdapter
from ..adapters.registry import make_adapter
from ..core.clock import Clock, SystemClock
from ..core.config import Channel, Config, resolve_secret
from ..core.errors import InvsyncError
from ..core.events import BadEvent, Event, event_kind, event_skus
from ..engine import keys
from ..engine.connection import Store, redact
from ..engine.engine import Engine
from ..engine.handoff import read_parts
from ..engine.models import SkuState
from . import systemd
from .channel_health import ChannelHealth, channel_health_routes
from .channels import ChannelManager, ChannelNotStarted, ChannelsMissing
from .drift import DriftWatch, drift_routes
from .feed import FeedHub
from .fulfillment import FulfillmentService, check_fulfillment
from .fulfillment_routes import fulfillment_routes
from .holds_routes import hold_routes
from .housekeeping import keep_running, reap_holds, tick_incidents, trim_intake
from .incidents import ExceptionQueue, ExceptionRecord, exception_routes
from .intake import Intake, Poison
from .metrics_sampler import sample_metrics
from .processor import Processor
from .reload import ReloadResult, reload_config
from .stockview import stock_view
from .store_watch import StoreWatch

log = structlog.get_logger("invsync.daemon")

SKU_IDLE_S = 60.0
#: Environment variable that overrides SKU_IDLE_S (seconds > 0): read once, by Daemon().
SKU_IDLE_ENV = "INVSYNC_SKU_IDLE_S"
SKU_MAILBOX = 1000
#: SKU actors kept parked at most; past it the one idle the longest is passivated at once (a
#: parked actor with its task is ~2-3 KB: a million-SKU import must not keep a million).
SKU_MAX_IDLE = 10_000
#: Real seconds the SKU actors' mailboxes get to drain at shutdown (the channels drain after).
DRAIN_TIMEOUT_S = 20.0
SLOW_STOP_S = 8.0
READY_PING_TIMEOUT_S = 1.0


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
    feed: FeedHub | None = None  # tells the live console of what was accepted

    async def append(self, events: Sequence[Event], *, source: str) -> list[str]:
        """Record ``events`` atomically (see ``Intake.append``)."""
        ids = await super().append(events, source=source)
        if self.processor is not None:
            self.processor.expect([event.id for event in events], ids)
        if self.feed is not None:
            self.feed.publish_events(events, source=source)
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


class Daemon:
    """The running daemon: builds and wires the parts, serves until stopped; also the
    ``DaemonContext`` its HTTP API and MQTT intake see."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._sku_idle_s = sku_idle_s()
        self._engine: Engine | None = None
        self._intake: Intake | None = None
        self._system: ActorSystem | None = None
        self._channels: ChannelManager | None = None
        self._processor: Processor | None = None
        self._exceptions: ExceptionQueue | None = None
        self._feed: FeedHub | None = None
        self._fulfillment: FulfillmentService | None = None
        self._session: aiohttp.ClientSession | None = None
        self._signalled = asyncio.Event()
        self._stop_asked = False
        self._reload_asked = False
        self._consumer_stop = asyncio.Event()
        self._store_watch: StoreWatch | None = None
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
    def channels(self) -> ChannelManager:
        """The channel manager (only while running)."""
        assert self._channels is not None, "daemon not running"
        return self._channels

    @property
    def adapters(self) -> Mapping[str, ChannelAdapter]:
        """Channel id -> adapter of every running channel."""
        return self._channels.adapters if self._channels is not None else {}

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
            async with asyncio.timeout(READY_PING_TIMEOUT_S):
                await self.engine.redis.ping()
            checks["redis"] = {"ok": True}
        except Exception as exc:  # any failure to answer is "not ready", said with its cause
            checks["redis"] = {"ok": False, "error": str(exc) or type(exc).__name__}
        if self._store_watch is not None:  # since when it is down, and restarts so far
            checks["redis"] = {**self._store_watch.report(), **checks["redis"]}
        system, channels = self._system, self._channels
        checks["actors"] = {
            "ok": system is not None and self._ready,
            "active": (system.active() if system else 0) + (channels.workers() if channels else 0),
        }
        checks["intake"] = {"ok": self._ready and not self._consumer_stop.is_set()}
        # An optional channel that could not start leaves the daemon ready (everything else
        # works, and a 503 would take all intake out of a load balancer) but degraded: named.
        held_back = sorted(channels.not_started) if channels else []
        checks["channels"] = {
            "ok": True,
            "channels": channels.status() if channels else {},
            "not_ready": held_back,
        }
        ready = all(c["ok"] for c in checks.values())
        return {"ready": ready, "degraded": held_back, "checks": checks}

    def channel_unavailable(self, channel: str) -> str | None:
        """Why an optional channel of the config does not run (its missing credential), or
        None when it runs or is not held back."""
        return self._channels.not_started.get(channel) if self._channels is not None else None

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
            parts = await read_parts(self.engine.redis, channel, order_id)
            view["handoff"] = {loc: msgspec.to_builtins(part) for loc, part in parts.items()}
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

    async def ingest(self, events: list[Event], source: str) -> list[str]:
        """Record events an adapter fetched from its channel (orders it polled), as a webhook
        would; raises BadEvent or an InvsyncError like the HTTP intake."""
        from .http import record_events

        return await record_events(self, events, source)

    # -- signals and reload -----------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop serving (SIGTERM, SIGINT): ``run`` shuts down and returns."""
        self._stop_asked = True
        self._signalled.set()

    def request_reload(self) -> None:
        """Reload the config file soon (SIGHUP); requests made meanwhile count once."""
        self._reload_asked = True
        self._signalled.set()

    async def reload(self) -> ReloadResult:
        """Apply the config file again (see ``daemon/reload.py``): an invalid file is refused,
        and a channel that cannot (re)start is named in the result (the old one keeps running)."""
        return await reload_config(self._config, self.channels, install=self._install)

    def _install(self, config: Config) -> None:
        """Put a reloaded config in force: what reads it on demand sees it from now on."""
        self._config = config
        self.engine.bundles = config.bundle_map()
        self.engine.safety_stock = {loc.id: loc.safety_stock for loc in config.locations}
        if self._intake is not None:
            self._intake.max_attempts = config.redis.event_attempts

    async def _serve_signals(self) -> None:
        """Reload on each SIGHUP until SIGTERM/SIGINT."""
        while True:
            await self._signalled.wait()
            self._signalled.clear()
            if self._stop_asked:
                return
            if self._reload_asked:
                self._reload_asked = False
                await self.reload()

    # -- wiring -----------------------------------------------------------------------------

    def _make_adapter(self, channel: Channel) -> ChannelAdapter | None:
        assert self._session is not None
        context = AdapterContext(
            session=self._session,
            redis=self.engine.redis,
            ingest=self.ingest,
            mqtt=self._config.mqtt if self._config.mqtt.url else None,
            base_dir=self._config.source.parent,
            clock=self._clock,
        )
        return make_adapter(channel, context)

    def _start_channels(self, config: Config) -> None:
        """Start every enabled channel. One that cannot start (a credential variable unset)
        stops the start (ChannelsMissing names them all), unless it is ``optional``: then it
        is held back, named by ``/readyz`` and its webhooks answer 503."""
        policies = config.policies()
        fatal: dict[str, str] = {}
        for channel in config.channels:
            if not channel.enabled:
                continue
            try:
                self.channels.start(channel, policies[channel.id])
            except ChannelNotStarted as exc:
                log.error(
                    "channel_not_started",
                    channel=channel.id,
                    reason=exc.reason,
                    optional=channel.optional,
                )
                if channel.optional:
                    self.channels.hold_back(channel.id, exc.reason)
                else:
                    fatal[channel.id] = exc.reason
        if fatal:
            raise ChannelsMissing(fatal)

    async def _push_refused(self, channel: str, sku: str, available: int, reason: str) -> None:
        """A channel refused a SKU for good: a ``push_refused`` incident."""
        await self.exceptions.raise_push_refused(channel, sku, available, reason)

    def _breaker_changed(self, channel: str, closed: bool) -> None:
        """Channel outages become ``channel_unreachable`` incidents."""
        if self._exceptions is not None:
            self._exceptions.breaker_changed(channel, closed)

    async def _repush(self, channel_id: str, sku: str | None) -> None:
        """Send our value of ``sku`` (or of every SKU) to the channel again."""
        if sku is None:
            self.channels.full_sync(channel_id)
            return
        await self.engine.redis.hdel(keys.pushed(channel_id), sku)  # else it is "already sent"
        assert self._system is not None
        await self._system.send(f"sku:{sku}", Recompute(force=True, channels=(channel_id,)))

    async def _publish_exception(self, record: ExceptionRecord) -> None:
        """New and resolved exception records go to the live feed when one is wired."""
        if self._feed is not None:
            self._feed.publish_exception(msgspec.to_builtins(record))

    async def _set_aside(self, poison: Poison) -> None:
        """An intake entry that failed every attempt, or cannot be decoded: a ``bad_event``
        incident with its payload and the error (the entry is then acknowledged)."""
        event = poison.event
        undecodable = event is None
        await self.exceptions.raise_bad_event(
            event.id if event is not None else f"entry-{poison.entry_id}",
            "UNDECODABLE_ENTRY" if undecodable else "EVENT_FAILED",
            poison.error
            if undecodable
            else f"failed {poison.attempts} attempts, set aside: {poison.error}",
            source=f"intake:{poison.source}",
            channel=getattr(event, "channel", None),
            order_id=getattr(event, "order_id", None),
            sku=next(iter(event_skus(event)), None) if event is not None else None,
            event_type=event_kind(event) if event is not None else None,
            payload=poison.payload,
        )

    async def _notify_sku(self, state: SkuState, accepted_ms: int) -> None:
        assert self._system is not None
        await self._system.send(
            f"sku:{state.sku}", StockChanged(state=state, accepted_ms=accepted_ms)
        )

    async def _bad_mqtt_message(self, topic: str, payload: bytes, error: str) -> None:
        """A refused MQTT message becomes a ``bad_event`` exception; its id is a digest of topic
        and payload, so a redelivered copy does not open a second record."""
        digest = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:16]
        event_id = _event_id_in(payload) or f"mqtt-{digest}"
        await self.exceptions.raise_bad_event(
            event_id,
            "MALFORMED_EVENT",
            f"{error} (payload: {payload[:200]!r})",
            source=f"mqtt:{topic}",
        )

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or ``request_stop``); returns the exit code."""
        from .feed import store_snapshot
        from .http import build_app
        from .metrics_server import metrics_app
        from .page import page_routes
        from .security import announce_page
        from .server import HttpServer

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        config = self._config
        clock = self._clock
        started = clock.now()
        async with contextlib.AsyncExitStack() as stack:
            store = await stack.enter_async_context(open_store(config, owner=True))
            engine = self._engine = await stack.enter_async_context(open_engine(config, store))
            # The feed outlives the actors and the HTTP server (entered before them).
            feed = self._feed = await stack.enter_async_context(FeedHub(clock=clock))
            listeners = (feed.listener,)
            self._session = await stack.enter_async_context(aiohttp.ClientSession())
            # Entered before the actor system, so it drains after it: the SKU actors' last
            # values reach the channels before they stop.
            channels = self._channels = await stack.enter_async_context(
                ChannelManager(
                    engine=engine,
                    clock=clock,
                    make_adapter=self._make_adapter,
                    bundles=config.bundle_map(),
                    on_refused=self._push_refused,
                    on_breaker=self._breaker_changed,
                )
            )
            exceptions = self._exceptions = ExceptionQueue(
                engine,
                lambda: self._config,
                cancel_support=channels.cancel_support,
                cancel_on_channel=channels.cancel_on_channel,
                repush=self._repush,
                publish=self._publish_exception,
                notify=self._notify_sku,
                clock=lambda: clock.wall_ms() / 1000,
            )
            intake = self._intake = _Intake(
                store.redis,
                clock=self._clock,
                op_timeout=config.redis.op_timeout_s,
                max_attempts=config.redis.event_attempts,
            )
            await intake.ensure_group()
            intake.feed = feed
            watch = self._store_watch = StoreWatch(
                store, clock=clock, unreachable_exit_s=lambda: self._config.redis.unreachable_exit_s
            )
            system = self._system = await stack.enter_async_context(ActorSystem(clock=clock))
            system.register(
                Kind(
                    name="sku",
                    factory=lambda key: SkuActor(
                        key,
                        engine,
                        lambda: channels.topology,
                        lambda: listeners,
                        deliver=channels.offer,
                    ),
                    mailbox_size=SKU_MAILBOX,
                    idle_timeout_s=self._sku_idle_s,
                    max_idle=SKU_MAX_IDLE,
                )
            )
            stack.push_async_callback(self._drain_actors)
            self._start_channels(config)
            check_fulfillment(config)
            processor = self._processor = Processor(
                engine, lambda: self._config, self._notify_sku, exceptions=exceptions
            )
            exceptions.reserve_again = processor.reserve_again
            handoff = self._fulfillment = FulfillmentService(
                engine,
                lambda: self._config,
                session=self._session,
                ingest=self.ingest,
                clock=clock,
                exceptions=exceptions,
            )
            processor.on_order = handoff.order_changed
            exceptions.actions.resend_fulfillment = handoff.resend
            exceptions.actions.order_changed = handoff.order_changed
            stack.push_async_callback(handoff.aclose)
            intake.processor = processor
            drift = DriftWatch(
                config=lambda: self._config,
                adapters=channels.live_adapters,
                redis=engine.redis,
                report=exceptions.report_drift,
                clock=clock,
            )
            health = ChannelHealth(channels.status, clock=clock)  # the console's view
            group = await stack.enter_async_context(asyncio.TaskGroup())

            def supervised(name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
                """A task of the group that an unexpected error restarts, never ends."""
                return group.create_task(keep_running(name, run, clock=clock), name=name)

            consumer = supervised(
                "intake",
                lambda: intake.consume(
                    processor.handle_batch, stop=self._consumer_stop, on_poison=self._set_aside
                ),
            )
            chores = [
                group.create_task(handoff.run()),
                supervised("store_watch", watch.run),
                supervised(
                    "hold_reaper",
                    lambda: reap_holds(engine, clock=clock, notify=self._notify_sku),
                ),
                supervised(
                    "watchdog", lambda: systemd.watchdog(clock=self._clock, healthy=watch.healthy)
                ),
                supervised(
                    "metrics_sampler",
                    lambda: sample_metrics(system, channels, intake, engine.redis, clock=clock),
                ),
                supervised("intake_trim", lambda: trim_intake(intake, clock=clock)),
                supervised("incident_tick", lambda: tick_incidents(exceptions, clock=clock)),
                supervised("drift_watch", drift.run),
                supervised("channel_health", health.run),
            ]
            if config.mqtt.url is not None:
                from .mqtt_intake import run_mqtt_intake

                chores.append(
                    supervised(
                        "mqtt_intake",
                        lambda: run_mqtt_intake(
                            lambda: self._config,
                            intake,
                            self.check_events,
                            on_bad=self._bad_mqtt_message,
                            clock=self._clock,
                        ),
                    )
                )
            routes = [
                *hold_routes(lambda: engine, clock=clock),
                *exception_routes(lambda: self.exceptions),
                *drift_routes(drift.check),
                *channel_health_routes(lambda: health),
                *fulfillment_routes(lambda: self._fulfillment, lambda: self._config),
                feed.route(store_snapshot(engine, lambda: channels.topology)),
                *page_routes(),
            ]
            if config.metrics.port is not None:
                # /metrics on a listener of its own too (daemon/metrics_server.py); it stops
                # with the stack, after the drain, so a scrape can watch the shutdown.
                await stack.enter_async_context(
                    HttpServer(metrics_app(), config.server.host, config.metrics.port)
                )
            server = HttpServer(
                build_app(self, routes=routes), config.server.host, config.server.port
            )
            await server.__aenter__()
            self.http_port = server.port
            announce_page(config, server.port)  # the live page's sign-in link (security.py)
            self._ready = True
            systemd.notify("READY=1", f"STATUS=running, {len(channels.running())} channel(s)")
            log.info(
                "started",
                store=redact(store.url),
                embedded=store.embedded is not None,
                http=f"{config.server.host}:{server.port}",
                channels=sorted(channels.running()),
                startup_s=round(clock.now() - started, 3),
            )
            try:
                await self._serve_signals()
            finally:
                systemd.notify("STOPPING=1")
                log.info("stopping")
                # If stopping takes long, say what it waits for (each task and where it is).
                asyncio.get_running_loop().call_later(SLOW_STOP_S, _log_pending_tasks)
                self._ready = False
                await server.__aexit__(None, None, None)  # no new HTTP intake
                self._consumer_stop.set()  # the consumer finishes its batch and returns
                await consumer
                await _cancel_all(chores)
        log.info("stopped")
        return 0

    async def _drain_actors(self) -> None:
        """Drain every SKU actor's mailbox, bounded by DRAIN_TIMEOUT_S (the channel manager,
        left next, then drains the channels)."""
        assert self._system is not None
        drained = await self._system.drain(DRAIN_TIMEOUT_S)
        if not drained:
            log.warning("drain_timed_out", timeout_s=DRAIN_TIMEOUT_S)


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
