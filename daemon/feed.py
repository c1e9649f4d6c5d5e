"""The live feed ``WS /v1/feed``: subscribe by SKUs and channels, a snapshot, then versioned deltas.

``FeedHub`` takes every availability a SKU actor publishes (``publish``, or ``listener`` as a
``SkuActor`` listener) and every exception record (``publish_exception``) and fans it out to the
websocket clients whose subscription matches. A message is encoded once (msgspec) into a log that
every client reads from its own cursor, so ``publish`` costs the same for 1 or 1,000 subscribers
and never waits.

The protocol (JSON text frames)::

    client  {"op": "subscribe", "skus": [...], "channels": [...], "batch": false, "events": false}
            lists empty or left out mean all; a new subscribe replaces the last one
    server  {"type": "snapshot", "items": [{"sku", "channel", "available", "version"}], "ts"}
            {"type": "availability", "sku", "channel", "available", "version", "ts"}
            {"type": "exception", ...record}
            {"type": "event", "source", "count", "events": [{"id", "event_type", "skus",
             "channel", "order_id"}], "ts"}    only for ``"events": true`` (below)
            {"type": "heartbeat", "ts"}                   after ``heartbeat_s`` of silence
            {"type": "resync", "reason": "slow consumer"}  then a fresh snapshot
            {"type": "error", "error": {"code", "message"}} a bad client message; stays open
            {"type": "batch", "messages": [...]}            only for ``"batch": true``

``ts`` is when the hub took the change (ms since the epoch). A client that subscribes with
``"events": true`` (the live console) also hears of the events the daemon accepts: one ``event``
message per accepted request (``count`` events, the first ``EVENTS_LISTED`` of them listed, each
with at most ``SKUS_LISTED`` SKUs), whatever its SKU and channel filters; a bulk import thus
stays a few messages, not a flood. Per (sku, channel) a client sees
versions only increase: deltas published while its snapshot is built are held back and those not
newer than the snapshot's item dropped. Without ``"batch"`` every message is its own frame, as the
spec has it. With ``"batch": true`` (for a client watching many changes, such as a dashboard) a
client is written at most once per ``batch_window_s`` (25 ms), a frame of several messages being
``{"type": "batch", "messages": [...]}``: the messages above, unchanged and in order.

Who may connect is decided before the handshake reaches the hub (``daemon/security.py``): a
credential (bearer header, or the live page's cookie) and, from a browser, the daemon's own
``Origin`` (a websocket has no same-origin rule of its own, so any page could open one).

A slow consumer never grows memory: the shared log keeps at most ``2 * max_queue`` messages and a
client's own queue at most ``max_queue``; past that its backlog is dropped and it gets ``resync``
and then a fresh snapshot (the latest state, not the stale backlog).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import msgspec
import structlog
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..actors.messages import AvailabilityChanged
from ..actors.sku import Topology, bundle_inputs
from ..core.clock import Clock, SystemClock
from ..core.errors import InvalidRequest, InvsyncError
from ..core.events import Event, event_kind, event_skus
from ..engine import keys
from ..engine.availability import availability_by_channel, bundle_available
from ..engine.engine import Engine

__all__ = [
    "FEED_PATH",
    "FeedHub",
    "Snapshot",
    "Subscribe",
    "store_snapshot",
]

log = structlog.get_logger("invsync.feed")

FEED_PATH = "/v1/feed"
#: The items of a snapshot: ``{"sku", "channel", "available", "version"}`` each.
Snapshot = Callable[[list[str], list[str]], Awaitable[list[dict[str, Any]]]]

SLOW_CONSUMER = "slow consumer"
#: How often at most a batching client is written to (a change waits at most this long for it).
BATCH_WINDOW_S = 0.025
_GOLDEN = 0.6180339887498949
#: At most this many events of one accepted request are listed in its ``event`` message...
EVENTS_LISTED = 10
#: ... each with at most this many of its SKUs.
SKUS_LISTED = 5
#: How long leaving the hub waits for its clients' connections to close.
CLOSE_WAIT_S = 5.0


# --- messages ----------------------------------------------------------------------------------


class Subscribe(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="op",
    tag="subscribe",
):
    """From a client: what to watch (empty = all) and whether it takes batched frames."""

    skus: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    batch: bool = False
    events: bool = False


class _Availability(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="availability"
):
    sku: str
    channel: str
    available: int
    version: int
    ts: int


class _Snapshot(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="snapshot"):
    items: list[dict[str, Any]]
    ts: int


class _Accepted(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="event"):
    source: str
    count: int
    events: list[dict[str, Any]]
    ts: int


class _Heartbeat(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="heartbeat"):
    ts: int


class _Resync(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="resync"):
    reason: str


class _Error(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="error"):
    error: dict[str, Any]


class BadMessage(InvalidRequest):
    """A client message that is not a JSON object of a known shape."""

    code = "BAD_MESSAGE"


class MalformedJson(InvalidRequest):
    """A client message that is not JSON at all."""

    code = "MALFORMED_JSON"


class UnknownOp(InvalidRequest):
    """A client message whose ``op`` the feed does not know."""

    code = "UNKNOWN_OP"


_encode = msgspec.json.Encoder().encode


class _Msg:
    """One encoded message, shared by every queue it is in; deltas carry their key and version,
    ``event`` marks the accepted-events messages (only for clients that asked for them)."""

    __slots__ = ("data", "event", "key", "version")

    def __init__(
        self,
        data: bytes,
        key: tuple[str, str] | None = None,
        version: int = 0,
        *,
        event: bool = False,
    ) -> None:
        self.data = data
        self.key = key
        self.version = version
        self.event = event


def parse_client_message(raw: str | bytes) -> Subscribe:
    """A client's message as a ``Subscribe``; ``InvalidRequest`` (with the spec's code) if not."""
    try:
        doc = msgspec.json.decode(raw, type=dict[str, Any])
    except msgspec.ValidationError as exc:
        raise BadMessage(f"a feed message must be a JSON object: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"not JSON: {exc}") from exc
    except RecursionError:  # a value nested 100,000 deep: msgspec gives up, so do we
        raise MalformedJson("not usable JSON: nested too deeply") from None
    op = doc.get("op")
    if op != "subscribe":
        raise UnknownOp(f"unknown op {op!r} (known: 'subscribe')")
    try:
        sub = msgspec.convert(doc, Subscribe)
    except msgspec.ValidationError as exc:
        raise BadMessage(str(exc)) from exc
    for sku in sub.skus:
        keys.check_sku(sku)
    return sub


# --- clients -----------------------------------------------------------------------------------


class _Client:
    """One connection: its subscription, where it is in the hub's log, its own queue, flags.

    Only the event loop touches it. ``queue`` holds what is for this client alone (errors,
    heartbeats) and log entries taken over when it fell ``max_queue`` behind in the log.
    """

    __slots__ = (
        "batch",
        "channels",
        "cursor",
        "events",
        "everything",
        "generation",
        "id",
        "last_sent",
        "parked",
        "pending",
        "phase",
        "queue",
        "resync",
        "skus",
        "snapshot_due",
        "subscribed",
        "wake",
    )

    def __init__(self, ident: int, now: float) -> None:
        self.id = ident
        self.queue: deque[_Msg] = deque()
        self.skus: frozenset[str] = frozenset()
        self.channels: frozenset[str] = frozenset()
        self.everything = False  # subscribed without a filter
        self.events = False  # takes the accepted-events messages
        self.batch = False
        self.subscribed = False
        self.cursor = 0  # the next log position it reads (while subscribed)
        self.generation = 0  # bumped by every subscribe: a snapshot in flight is then void
        self.snapshot_due = False
        self.resync: str | None = None  # reason to tell before the next snapshot
        # While its snapshot is built: the newest delta per key it fell behind on (else None).
        self.pending: dict[tuple[str, str], _Msg] | None = None
        self.parked = False  # its writer waits for something to send
        self.phase = 0.0  # seconds into each batch window at which it is written
        self.last_sent = now
        self.wake = asyncio.Event()

    def wants(self, message: _Msg) -> bool:
        """Whether ``message`` from the log matches the subscription (exceptions always do,
        accepted events when it asked for them)."""
        key = message.key
        if key is None:
            return self.events or not message.event
        return (not self.skus or key[0] in self.skus) and (
            not self.channels or key[1] in self.channels
        )


# --- the hub -----------------------------------------------------------------------------------


class FeedHub:
    """Fans availability changes and exception records out to the feed's websocket clients.

    An async context manager: entering starts its heartbeat task, leaving closes every client
    (1001, going away) and stops it. ``route(snapshot)`` is the ``WS /v1/feed`` endpoint.

    Published messages go once into a log shared by all clients, each client reading it from
    its own cursor: a publish costs the same for 1 or 1,000 subscribers (plus waking the idle
    ones it concerns). The log keeps at most ``2 * max_queue`` messages; a client that falls
    ``max_queue`` behind has what it wants of them moved to its own queue, and when that holds
    more than ``max_queue`` it is dropped for a ``resync`` and a fresh snapshot.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        heartbeat_s: float = 15.0,
        max_queue: int = 1000,
        batch_window_s: float = BATCH_WINDOW_S,
    ) -> None:
        if heartbeat_s <= 0 or max_queue < 1 or batch_window_s < 0:
            raise ValueError("heartbeat_s must be > 0, max_queue >= 1, batch_window_s >= 0")
        self.heartbeat_s = heartbeat_s
        self.max_queue = max_queue
        self.batch_window_s = batch_window_s
        self.resyncs = 0  # slow-consumer overflows since start
        self._clock: Clock = clock or SystemClock()
        self._ids = itertools.count(1)
        self._clients: set[_Client] = set()
        self._log: list[_Msg] = []
        self._base = 0  # log position of self._log[0]
        # Subscribed clients, the one with the oldest cursor first.
        self._readers: OrderedDict[_Client, None] = OrderedDict()
        # Who to wake on a publish: idle unfiltered clients; filtered ones by SKU or channel.
        self._parked_all: set[_Client] = set()
        self._by_channel: dict[str, set[_Client]] = {}  # channel filter only
        self._by_sku: dict[str, set[_Client]] = {}  # SKU filter (channel filter checked)
        self._event_clients: set[_Client] = set()  # subscribed with "events": true
        self._last_event = -1  # log position of the newest accepted-events message
        self._open = False
        self._closing = False
        self._empty = asyncio.Event()
        self._empty.set()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tasks.append(self._tg.create_task(self._heartbeats(), name="feed-heartbeats"))
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        self._closing = True
        for client in self._clients:
            self._wake(client)
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self._empty.wait()
        except TimeoutError:
            log.warning("feed_close_timed_out", clients=len(self._clients))
        finally:
            for task in self._tasks:
                task.cancel()
            assert self._tg is not None
            await self._tg.__aexit__(exc_type, exc, tb)

    # -- what the daemon calls --------------------------------------------------------------

    def publish(self, update: AvailabilityChanged, channel: str) -> None:
        """Send ``update`` (availability on ``channel``) to every client whose subscription
        matches; encoded once, never waits."""
        if not self._readers or not self._open:
            return
        sku = update.sku
        self._append(
            _Msg(
                _encode(
                    _Availability(
                        sku=sku,
                        channel=channel,
                        available=update.available,
                        version=update.version,
                        ts=self._clock.wall_ms(),
                    )
                ),
                (sku, channel),
                update.version,
            )
        )
        if self._parked_all:
            for client in self._parked_all:
                client.parked = False
                client.wake.set()
            self._parked_all.clear()
        by_channel = self._by_channel.get(channel)
        if by_channel:
            for client in by_channel:
                if client.parked:
                    self._wake(client)
        by_sku = self._by_sku.get(sku)
        if by_sku:
            for client in by_sku:
                if client.parked and (not client.channels or channel in client.channels):
                    self._wake(client)

    async def listener(self, update: AvailabilityChanged, channel: str) -> None:
        """``publish`` as a ``SkuActor`` listener."""
        self.publish(update, channel)

    def publish_exception(self, record: Mapping[str, Any]) -> None:
        """Send an exception record to every subscribed client as ``{"type": "exception",
        ...record}`` (a ``type`` key of the record is replaced)."""
        if not self._readers or not self._open:
            return
        self._append(_Msg(_encode({**record, "type": "exception"})))
        for client in self._readers:
            if client.parked:
                self._wake(client)

    def publish_events(self, events: Sequence[Event], *, source: str) -> None:
        """Tell the clients that asked for accepted events (``"events": true``) of one accepted
        request: one message, listing at most ``EVENTS_LISTED`` of them; never waits."""
        if not self._event_clients or not self._open or not events:
            return
        listed = []
        for event in events[:EVENTS_LISTED]:
            skus = event_skus(event)
            listed.append(
                {
                    "id": event.id,
                    "event_type": event_kind(event),
                    "skus": skus[:SKUS_LISTED],
                    "more_skus": max(0, len(skus) - SKUS_LISTED),
                    "channel": getattr(event, "channel", None),
                    "order_id": getattr(event, "order_id", None),
                }
            )
        message = _Accepted(
            source=source, count=len(events), events=listed, ts=self._clock.wall_ms()
        )
        self._last_event = self._base + len(self._log)
        self._append(_Msg(_encode(message), event=True))
        for client in self._event_clients:
            if client.parked:
                self._wake(client)

    # -- observation ------------------------------------------------------------------------

    @property
    def clients(self) -> int:
        """Connected clients."""
        return len(self._clients)

    @property
    def log_size(self) -> int:
        """Messages in the shared log (at most ``2 * max_queue``, whatever the clients)."""
        return len(self._log)

    def queue_sizes(self) -> dict[int, int]:
        """Client id -> messages held for it alone (at most ``max_queue`` each; while its
        snapshot is built, plus the newest delta per key it fell behind on)."""
        return {c.id: len(c.queue) + len(c.pending or ()) for c in self._clients}

    # -- the log and the queues -------------------------------------------------------------

    def _append(self, message: _Msg) -> None:
        log_ = self._log
        log_.append(message)
        head = self._base + len(log_)
        limit = head - self.max_queue
        readers = self._readers
        while readers:
            oldest = next(iter(readers))
            if oldest.cursor >= limit:
                break
            self._take_over(oldest)
        if len(log_) >= 2 * self.max_queue:
            drop = len(log_) - self.max_queue  # every cursor is at or past head - max_queue
            del log_[:drop]
            self._base += drop

    def _read(self, client: _Client) -> list[_Msg]:
        """The log entries ``client`` has not read yet (all of them: not filtered)."""
        entries = self._log[client.cursor - self._base :]
        client.cursor = self._base + len(self._log)
        self._readers.move_to_end(client)
        return entries

    def _mine(self, client: _Client) -> Iterable[_Msg]:
        """What of its unread log entries is for ``client``: all of them, unfiltered, for a
        client without filters when it takes accepted events or none are among them."""
        start = client.cursor
        entries = self._read(client)
        if client.everything and (client.events or self._last_event < start):
            return entries
        return filter(client.wants, entries)

    def _take_over(self, client: _Client) -> None:
        """Move what ``client`` wants of its unread log entries to its own queue (or, while
        its snapshot is due or built, keep only what the snapshot will not cover)."""
        if client.snapshot_due:
            client.queue.extend(m for m in self._read(client) if m.key is None and client.wants(m))
        elif client.pending is not None:
            for m in self._read(client):
                if not client.wants(m):
                    continue
                if m.key is None:
                    client.queue.append(m)
                else:
                    client.pending[m.key] = m  # the newest per key: bounded by the snapshot
        else:
            client.queue.extend(self._mine(client))
        self._check(client)

    def _direct(self, client: _Client, message: _Msg) -> None:
        client.queue.append(message)
        self._check(client)

    def _check(self, client: _Client) -> None:
        """Drop the backlog of a client with more than ``max_queue`` messages (it gets a resync
        and a fresh snapshot); wake it if it has something to send."""
        if len(client.queue) > self.max_queue:
            client.queue.clear()  # stale: a fresh snapshot replaces it
            if client.subscribed:
                client.resync = SLOW_CONSUMER
                client.snapshot_due = True
                self.resyncs += 1
                log.info("feed_slow_consumer", client=client.id, max_queue=self.max_queue)
        if client.queue or client.resync is not None:
            self._wake(client)

    def _wake(self, client: _Client) -> None:
        client.parked = False
        self._parked_all.discard(client)
        client.wake.set()

    def _index(self, client: _Client, add: bool) -> None:
        def update(index: dict[str, set[_Client]], name: str) -> None:
            clients = index.setdefault(name, set())
            if add:
                clients.add(client)
            else:
                clients.discard(client)
                if not clients:
                    del index[name]

        if client.skus:
            for sku in client.skus:
                update(self._by_sku, sku)
        elif client.channels:
            for channel in client.channels:
                update(self._by_channel, channel)

    def _subscribe(self, client: _Client, sub: Subscribe) -> None:
        if client.subscribed:
            self._index(client, add=False)
        else:
            client.cursor = self._base + len(self._log)
            self._readers[client] = None
        client.skus = frozenset(sub.skus)
        client.channels = frozenset(sub.channels)
        client.everything = not (client.skus or client.channels)
        if client.events:
            self._event_clients.discard(client)
        client.events = sub.events
        if client.events:
            self._event_clients.add(client)
        client.batch = sub.batch
        client.subscribed = True
        client.generation += 1
        client.snapshot_due = True
        client.resync = None
        self._index(client, add=True)
        self._wake(client)

    def _unsubscribe(self, client: _Client) -> None:
        if client.subscribed:
            self._index(client, add=False)
            self._readers.pop(client, None)
        self._parked_all.discard(client)
        self._event_clients.discard(client)
        client.subscribed = False
        client.everything = False
        client.events = False
        client.snapshot_due = False
        client.generation += 1

    def _error(self, client: _Client, exc: InvsyncError) -> None:
        error = {"code": exc.code, "message": exc.message}
        self._direct(client, _Msg(_encode(_Error(error=error))))

    # -- the connection ---------------------------------------------------------------------

    def route(self, snapshot: Snapshot) -> WebSocketRoute:
        """``WS /v1/feed`` serving this hub; ``snapshot(skus, channels)`` gives the current
        items (empty lists = all), read after the subscription is registered."""

        async def feed(websocket: WebSocket) -> None:
            await self._serve(websocket, snapshot)

        return WebSocketRoute(FEED_PATH, feed, name="feed")

    async def _serve(self, websocket: WebSocket, snapshot: Snapshot) -> None:
        await websocket.accept()
        if not self._open:
            await websocket.close(1001, "shutting down")
            return
        client = _Client(next(self._ids), self._clock.now())
        client.phase = (client.id * _GOLDEN) % 1.0 * self.batch_window_s  # evenly spread
        self._clients.add(client)
        self._empty.clear()
        try:
            async with asyncio.TaskGroup() as group:
                writer = group.create_task(
                    self._write(websocket, client, snapshot), name=f"feed-writer-{client.id}"
                )
                await self._receive(websocket, client)
                writer.cancel()
        except* WebSocketDisconnect:
            pass  # the client went away while we wrote to it
        except* Exception:
            # The edge of the connection: the log gets the traceback, the client a 1011.
            log.exception("feed_failed", client=client.id)
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await websocket.close(1011, "internal error")
        finally:
            self._unsubscribe(client)
            self._clients.discard(client)
            if not self._clients:
                self._empty.set()

    async def _receive(self, websocket: WebSocket, client: _Client) -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            try:
                sub = parse_client_message(raw)
            except InvalidRequest as exc:
                self._error(client, exc)
                continue
            self._subscribe(client, sub)

    async def _write(self, websocket: WebSocket, client: _Client, snapshot: Snapshot) -> None:
        # One decision at a time, re-checked after every await: what was decided before a
        # send may be stale once it returns (an overflow, a resubscribe).
        while not self._closing:
            if client.resync is not None:
                reason, client.resync = client.resync, None
                await self._send(websocket, client, [_Msg(_encode(_Resync(reason=reason)))])
                continue
            if client.snapshot_due:
                await self._snapshot(websocket, client, snapshot)
                continue
            messages = list(client.queue)
            client.queue.clear()
            if client.subscribed and client.cursor < self._base + len(self._log):
                messages += self._mine(client)
            if messages:
                await self._send(websocket, client, messages)
                continue
            client.wake.clear()
            client.parked = True
            if client.everything:
                self._parked_all.add(client)
            await client.wake.wait()
            if client.batch and self.batch_window_s > 0 and not client.snapshot_due:
                # One frame per window at most (fewer, fuller frames), at the client's own phase
                # in the window: clients woken by the same change are written spread over the
                # window, interleaved with the rest of the daemon, not all at once.
                window = self.batch_window_s
                await self._clock.sleep(window - (self._clock.now() - client.phase) % window)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # already closed
            await websocket.close(1001, "shutting down")

    async def _snapshot(self, websocket: WebSocket, client: _Client, snapshot: Snapshot) -> None:
        generation = client.generation
        client.snapshot_due = False
        # Deltas published until now are in what the snapshot reads; later ones are held.
        backlog = [*client.queue, *self._read(client)]
        client.queue = deque(m for m in backlog if m.key is None and client.wants(m))
        client.pending = {}
        try:
            items = await snapshot(sorted(client.skus), sorted(client.channels))
        except InvsyncError as exc:
            if client.generation == generation:
                self._unsubscribe(client)
                self._error(client, exc)
            log.warning("feed_snapshot_failed", client=client.id, code=exc.code, error=exc.message)
            return
        finally:
            held, client.pending = client.pending or {}, None
        if client.generation != generation or client.snapshot_due:
            return  # resubscribed or overflowed meanwhile: the next snapshot replaces this one
        seen = {(item["sku"], item["channel"]): item["version"] for item in items}
        fresh = [
            m
            for m in itertools.chain(held.values(), filter(client.wants, self._read(client)))
            if m.key is None or m.key not in seen or m.version > seen[m.key]
        ]
        first = _Msg(_encode(_Snapshot(items=items, ts=self._clock.wall_ms())))
        await self._send(websocket, client, [first])
        if fresh:
            await self._send(websocket, client, fresh)

    async def _send(self, websocket: WebSocket, client: _Client, messages: list[_Msg]) -> None:
        if client.batch and len(messages) > 1:
            body = b",".join([m.data for m in messages])
            frames: Iterable[bytes] = (b'{"type":"batch","messages":[' + body + b"]}",)
        else:
            frames = (m.data for m in messages)
        for frame in frames:
            await websocket.send({"type": "websocket.send", "text": frame.decode()})
        client.last_sent = self._clock.now()

    async def _heartbeats(self) -> None:
        # Swept 4 times per interval: a silent client hears every 7/8 to 9/8 of heartbeat_s.
        period = self.heartbeat_s / 4
        while True:
            await self._clock.sleep(period)
            now = self._clock.now()
            beat: _Msg | None = None
            for client in self._clients:
                if not client.queue and now - client.last_sent >= self.heartbeat_s - period / 2:
                    beat = beat or _Msg(_encode(_Heartbeat(ts=self._clock.wall_ms())))
                    self._direct(client, beat)


# --- the daemon's snapshot ---------------------------------------------------------------------


def store_snapshot(engine: Engine, topology: Callable[[], Topology]) -> Snapshot:
    """The snapshot of the store as SKU actors compute availability: the running channels'
    policies, a SKU's version, and for a bundle the sum of its components' versions."""

    async def snapshot(skus: list[str], channels: list[str]) -> list[dict[str, Any]]:
        topo = topology()
        wanted = set(channels)
        policies = {ch: p for ch, p in topo.policies.items() if not wanted or ch in wanted}
        if not policies:
            return []
        if skus:
            plain = [s for s in skus if s not in topo.bundles]
            bundles = [topo.bundles[s] for s in skus if s in topo.bundles]
        else:
            plain = list(dict.fromkeys([s async for s in engine.skus()]))  # SCAN may repeat
            bundles = list(topo.bundles.values())
        components = {c for b in bundles for c in b.components}
        states = await engine.stocks([*plain, *(components - set(plain))])
        items: list[dict[str, Any]] = []
        for sku in plain:
            state = states.get(sku)
            stock = state.stock() if state else {}
            version = state.version if state else 0
            for channel, available in availability_by_channel(stock, policies).items():
                items.append(
                    {"sku": sku, "channel": channel, "available": available, "version": version}
                )
        for bundle in bundles:
            stocks, version = bundle_inputs(bundle, states)
            for channel, policy in policies.items():
                items.append(
                    {
                        "sku": bundle.sku,
                        "channel": channel,
                        "available": bundle_available(bundle, stocks, policy),
                        "version": version,
                    }
                )
        return items

    return snapshot
