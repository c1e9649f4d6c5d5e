"""The fulfillment handoff: routed order parts reach the location that ships them.

After every change of an order (reserved, cancelled, re-routed by an exception action, shipped),
``order_changed`` lets ``engine/handoff.py`` queue what each location with a ``fulfillment``
config must now be told, in the store's outbox (durable: queued in the same MULTI as the part it
describes, derived from the reserved order only). One delivery task per location reads its outbox
in order and hands the messages to the location's sender (``adapters/fulfillment/``):

- acknowledged: the message leaves the outbox, the part's state says so, latency is observed;
- undelivered (unreachable, 5xx, 429, a full disk): the same batch again after a backoff, so
  messages of one order (of every order) reach the location in the order they were queued;
- refused (4xx): a ``fulfillment_refused`` incident with the order's context; the next message
  goes on. A store outage pauses delivery (retried with backoff), never crashes the daemon.

Shipments come back as ``order.fulfilled`` events through the intake: from 945 files dropped in an
``edi940`` location's inbox (read here every ``poll_s``), or from the location's signed POSTs to
``/fulfillment/{location}`` (``daemon/fulfillment_routes.py``). docs/fulfillment.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
import structlog
from redis.asyncio import Redis

from ..adapters.fulfillment import Refused, Sender, Undelivered, make_sender, missing_secret
from ..adapters.fulfillment.edi945 import BadAdvice, parse_945
from ..core.clock import Clock
from ..core.config import Config, Location
from ..core.errors import InvalidRequest, InvsyncError, StoreUnavailable
from ..core.events import Event, EventLine, OrderFulfilled
from ..core.fulfillment_config import Edi940Fulfillment
from ..core.fulfillment_messages import Message
from ..core.retry import Backoff
from ..engine import handoff, keys
from ..engine.engine import Engine
from ..metrics import fulfillment as fm

if TYPE_CHECKING:
    from .incidents import ExceptionQueue

__all__ = ["FulfillmentMissing", "FulfillmentService", "check_fulfillment",
           "fulfillment_problems"]

log = structlog.get_logger("invsync.fulfillment")

Ingest = Callable[[list[Event], str], Awaitable[list[str]]]
_STORE_ERRORS = (StoreUnavailable, ConnectionError, TimeoutError, OSError)
_INBOX_PATTERNS = ("*.edi", "*.x12", "*.945", "*.txt")
_LOCK_STRIPES = 256


class FulfillmentMissing(InvsyncError):
    """Start-up refused: a location's fulfillment names a secret variable that is unset."""

    code = "FULFILLMENT_NOT_STARTED"


def fulfillment_problems(config: Config) -> list[str]:
    """Why each fulfillment location could not hand over in this environment (an unset secret
    variable, named): checked by ``check-config`` and before the daemon starts."""
    problems = []
    for location in config.locations:
        env = missing_secret(location, config.mqtt)
        if env is not None:
            problems.append(
                f"location '{location.id}': fulfillment: environment variable {env} is not set "
                "(or empty)"
            )
    return problems


def check_fulfillment(config: Config) -> None:
    """Raise FulfillmentMissing naming every location whose secret is unset."""
    problems = fulfillment_problems(config)
    if problems:
        raise FulfillmentMissing(
            "; ".join(problems) + ". Set the variable(s) or remove the location's fulfillment"
        )


class FulfillmentService:
    """Queues, delivers and tracks the handoff of order parts to fulfillment locations."""

    def __init__(
        self,
        engine: Engine,
        config: Callable[[], Config],
        *,
        session: aiohttp.ClientSession,
        ingest: Ingest,
        clock: Clock,
        exceptions: ExceptionQueue | None = None,
    ) -> None:
        self._engine = engine
        self._redis: Redis = engine.redis
        self._config = config
        self._session = session
        self._ingest = ingest
        self._clock = clock
        self.exceptions = exceptions
        # Calls for one order are serialised (striped locks: bounded, never cleaned up).
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        self._wake: dict[str, asyncio.Event] = {}
        #: location -> its sender (tests read what an EDI writer wrote)
        self.senders: dict[str, Sender] = {}

    # -- queueing ---------------------------------------------------------------------------

    def handoff_locations(self) -> dict[str, bool]:
        """Location id -> True for every location that takes handoffs."""
        return {loc.id: True for loc in self._config().locations if loc.fulfillment is not None}

    async def order_changed(
        self, channel: str, order_id: str, *, ship_to: dict[str, Any] | None = None
    ) -> list[Message]:
        """Queue what the order's locations must now be told (nothing when none takes
        handoffs). Raises StoreUnavailable, so the event that changed the order is retried."""
        locations = self.handoff_locations()
        if not locations:
            return []
        if ship_to is not None:
            ship_to = {k: v for k, v in ship_to.items() if v is not None} or None
        lock = self._locks[hash(keys.order_tag(channel, order_id)) % _LOCK_STRIPES]
        async with lock:
            order = await self._engine.order(channel, order_id)
            if order is None or order.kind != "order":
                return []
            late = False
            raw = await self._redis.get(keys.routing(channel, order_id))
            if raw is not None:
                late = bool(msgspec.json.decode(raw).get("late"))
            sla = next((ch.sla_days for ch in self._config().channels if ch.id == channel), None)
            messages = await handoff.sync_order(
                self._redis,
                order,
                locations,
                now_ms=self._clock.wall_ms(),
                ship_to=ship_to,
                sla_days=sla,
                late=late,
            )
        for message in messages:
            fm.FULFILLMENT_MESSAGES.labels(message.location, message.type, "queued").inc()
            log.info("fulfillment_queued", location=message.location, type=message.type,
                     order=f"{channel}/{order_id}", message=message.id)
            self._wake.setdefault(message.location, asyncio.Event()).set()
        return messages

    async def resend(self, channel: str, order_id: str, location: str) -> dict[str, Any]:
        """Queue the part's current request again (an operator's ``resend``)."""
        parts = await handoff.read_parts(self._redis, channel, order_id)
        part = parts.get(location)
        if part is None or not part.lines:
            return {"ok": False, "why": f"{location} has no part of this order to send"}
        message = await handoff.requeue(self._redis, channel, order_id, part,
                                        now_ms=self._clock.wall_ms())
        fm.FULFILLMENT_MESSAGES.labels(location, message.type, "queued").inc()
        self._wake.setdefault(location, asyncio.Event()).set()
        return {"resent": message.id}

    # -- delivering -------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver every handoff location's outbox (and read the 945 inboxes) until cancelled.
        A location whose sender cannot be made (a missing secret) is logged and skipped."""
        async with asyncio.TaskGroup() as group:
            for location in self._config().locations:
                if location.fulfillment is None:
                    continue
                fm.touch_location(location.id)
                try:
                    sender = make_sender(
                        location,
                        session=self._session,
                        redis=self._redis,
                        mqtt=self._config().mqtt,
                        base_dir=self._config().source.parent,
                        wall=lambda: self._clock.wall_ms() / 1000,
                    )
                except ValueError as exc:
                    log.error("fulfillment_not_started", location=location.id, reason=str(exc))
                    continue
                self.senders[location.id] = sender
                group.create_task(self._deliver(location.id, sender))
                inbox = _inbox(location, self._config().source.parent)
                if inbox is not None:
                    assert isinstance(location.fulfillment, Edi940Fulfillment)
                    group.create_task(
                        self._read_inbox(location.id, inbox, location.fulfillment.poll_s)
                    )

    async def aclose(self) -> None:
        for sender in self.senders.values():
            with contextlib.suppress(Exception):
                await sender.aclose()

    async def _deliver(self, location: str, sender: Sender) -> None:
        cfg = next(x for x in self._config().locations if x.id == location).fulfillment
        assert cfg is not None
        backoff = Backoff(cfg.retry.base_s, cfg.retry.cap_s)
        wake = self._wake.setdefault(location, asyncio.Event())
        attempt = 0
        outbox = handoff.outbox_key(location)
        while True:
            try:
                entries = await self._redis.xrange(outbox, "-", "+", count=sender.batch_size)
                fm.FULFILLMENT_OUTBOX.labels(location).set(await self._redis.xlen(outbox))
            except _STORE_ERRORS as exc:
                attempt += 1
                log.warning("fulfillment_store_unavailable", location=location, error=str(exc))
                await backoff.wait(self._clock, attempt)
                continue
            if not entries:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await wake.wait()
                continue
            ids: list[Any] = [entry_id for entry_id, _ in entries]
            messages = [_decode(fields) for _, fields in entries]
            try:
                await sender.send(messages)
            except Undelivered as exc:
                attempt += 1
                for message in messages:
                    fm.FULFILLMENT_MESSAGES.labels(location, message.type, "retried").inc()
                    await self._mark(message, "sent", exc.reason)
                pause = backoff.delay(attempt)
                if exc.retry_after_s is not None:
                    pause = max(pause, exc.retry_after_s)
                log.warning("fulfillment_undelivered", location=location, attempt=attempt,
                            retry_in_s=round(pause, 2), error=exc.reason)
                await self._clock.sleep(pause)
                continue
            except Refused as exc:
                attempt = 0
                message = messages[0]
                await self._refused(message, exc)
                await self._forget(outbox, [ids[0]])
                continue
            attempt = 0
            now = self._clock.wall_ms()
            for message in messages:
                fm.FULFILLMENT_MESSAGES.labels(location, message.type, "acknowledged").inc()
                if message.created_ms:
                    fm.FULFILLMENT_ACK_LATENCY.labels(location).observe(
                        max(0.0, (now - message.created_ms) / 1000)
                    )
                await self._mark(message, "acknowledged")
                log.info("fulfillment_acknowledged", location=location, message=message.id,
                         type=message.type)
            await self._forget(outbox, ids)

    async def _mark(self, message: Message, state: handoff.HandoffState,
                    error: str | None = None) -> None:
        while True:
            try:
                await handoff.mark(self._redis, message, state, now_ms=self._clock.wall_ms(),
                                   error=error)
                return
            except _STORE_ERRORS as exc:
                log.warning("fulfillment_store_unavailable", error=str(exc))
                await self._clock.sleep(1.0)

    async def _forget(self, outbox: str, ids: list[Any]) -> None:
        while True:
            try:
                await self._redis.xdel(outbox, *ids)
                return
            except _STORE_ERRORS as exc:
                log.warning("fulfillment_store_unavailable", error=str(exc))
                await self._clock.sleep(1.0)

    async def _refused(self, message: Message, exc: Refused) -> None:
        fm.FULFILLMENT_MESSAGES.labels(message.location, message.type, "refused").inc()
        await self._mark(message, "refused", exc.reason)
        log.error("fulfillment_refused", location=message.location, message=message.id,
                  order=f"{message.channel}/{message.order_id}", reason=exc.reason)
        if self.exceptions is not None:
            with contextlib.suppress(InvsyncError):
                await self.exceptions.raise_fulfillment_refused(
                    msgspec.to_builtins(message), exc.reason, status=exc.status
                )

    # -- shipments --------------------------------------------------------------------------

    async def shipped(
        self, location: str, ref_or_order: tuple[str, str] | str, lines: dict[str, int],
        report_id: str, source: str,
    ) -> list[str]:
        """Record a location's shipment as ``order.fulfilled``; returns the event ids.
        ``ref_or_order`` is a part reference (from a 945) or (channel, order id)."""
        if isinstance(ref_or_order, str):
            found = await handoff.ref_part(self._redis, ref_or_order)
            if found is None:
                raise InvalidRequest(f"unknown depositor order number {ref_or_order!r}")
            channel, order_id, part_location = found
            if part_location != location:
                raise InvalidRequest(
                    f"{ref_or_order} is a part of {part_location}, not of {location}"
                )
        else:
            channel, order_id = ref_or_order
        if not lines:
            order = await self._engine.order(channel, order_id)
            held = [x for x in order.lines if x.location == location] if order else []
            lines = {}
            for line in held:
                if line.reserved > 0:
                    lines[line.sku] = lines.get(line.sku, 0) + line.reserved
            if not lines:
                raise InvalidRequest(
                    f"{location} holds nothing reserved of order {channel}/{order_id}"
                )
        event = OrderFulfilled(
            id=f"ship-{location}-{report_id}"[:200],
            channel=channel,
            order_id=order_id,
            lines=[EventLine(sku=sku, qty=qty, location=location)
                   for sku, qty in sorted(lines.items()) if qty > 0],
        )
        ids = await self._ingest([event], source)
        fm.FULFILLMENT_SHIPMENTS.labels(location, "recorded").inc()
        return ids

    async def refused_later(
        self, location: str, channel: str, order_id: str, report_id: str, reason: str
    ) -> None:
        """The location cannot ship its part after all: a ``fulfillment_refused`` incident."""
        parts = await handoff.read_parts(self._redis, channel, order_id)
        part = parts.get(location)
        if part is None:
            raise InvalidRequest(f"{location} was never asked to ship {channel}/{order_id}")
        await self._mark_part_refused(channel, order_id, part, reason)
        if self.exceptions is not None:
            context = {
                "type": "fulfillment.requested", "id": part.message_id, "channel": channel,
                "order_id": order_id, "location": location, "report": report_id,
                "lines": [{"sku": s, "qty": q} for s, q in sorted(part.lines.items())],
                "ship_to": part.ship_to,
            }
            await self.exceptions.raise_fulfillment_refused(context, reason or "no reason given")

    async def _mark_part_refused(
        self, channel: str, order_id: str, part: handoff.Part, reason: str
    ) -> None:
        part.state, part.error = "refused", reason or "refused by the location"
        part.updated_ms = self._clock.wall_ms()
        await self._redis.hset(
            handoff.parts_key(channel, order_id), part.location, msgspec.json.encode(part)
        )

    async def _read_inbox(self, location: str, inbox: Path, poll_s: float) -> None:
        while True:
            try:
                await self._read_inbox_once(location, inbox)
            except _STORE_ERRORS as exc:
                log.warning("fulfillment_inbox_paused", location=location, error=str(exc))
            except InvsyncError as exc:
                log.warning("fulfillment_inbox_paused", location=location, error=exc.message)
            await self._clock.sleep(poll_s)

    async def _read_inbox_once(self, location: str, inbox: Path) -> int:
        """Read every 945 file waiting in ``inbox``; returns the files handled."""
        files = await asyncio.to_thread(_waiting, inbox)
        for path in files:
            try:
                text = await asyncio.to_thread(path.read_text, "ascii", "replace")
                shipments = parse_945(text)
                for shipment in shipments:
                    await self.shipped(
                        location,
                        shipment.ref,
                        shipment.lines,
                        f"945-{shipment.control}-{shipment.ref}-{shipment.shipment_id}",
                        f"edi945:{location}",
                    )
            except (BadAdvice, InvalidRequest, ValueError) as exc:
                fm.FULFILLMENT_SHIPMENTS.labels(location, "rejected").inc()
                log.error("fulfillment_advice_rejected", location=location, file=path.name,
                          reason=str(exc))
                await asyncio.to_thread(_move, path, inbox / "rejected")
                if self.exceptions is not None:
                    await self.exceptions.raise_bad_event(
                        f"945-{location}-{path.name}"[:200],
                        "BAD_945",
                        f"{path.name}: {exc}",
                        source=f"edi945:{location}",
                    )
                continue
            log.info("fulfillment_advice_read", location=location, file=path.name,
                     shipments=len(shipments))
            await asyncio.to_thread(_move, path, inbox / "processed")
        return len(files)


def _inbox(location: Location, base_dir: Path) -> Path | None:
    config = location.fulfillment
    if not isinstance(config, Edi940Fulfillment) or config.inbox is None:
        return None
    path = Path(config.inbox).expanduser()
    return path if path.is_absolute() else base_dir / path


def _decode(fields: Any) -> Message:
    """An outbox entry's message."""
    return msgspec.json.decode(fields[b"msg"], type=Message)


def _waiting(inbox: Path) -> list[Path]:
    """The files waiting in ``inbox``, oldest name first (none when the folder is missing)."""
    if not inbox.is_dir():
        return []
    return sorted({p for pattern in _INBOX_PATTERNS for p in inbox.glob(pattern) if p.is_file()})


def _move(path: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), folder / path.name)
