"""The exception queue: problems an operations team acts on, as records in Redis.

A record names its kind (``oversold``, ``unroutable``, ``cancel_after_fulfilment``,
``channel_unreachable``, ``drift``, ``unknown_sku``, ``bad_event``), the order / SKU / channel,
what happened, the options with their downstream effect, and its state (``open``,
``auto_resolved``, ``resolved``). Ids are derived from the cause, so a replayed event finds its
record instead of adding one. ``[exceptions] auto_resolve`` applies an action at once where the
policy allows it; otherwise an operator resolves through ``POST /v1/exceptions/{id}/resolve``.
Resolving runs the action for real (a re-route reserves, a cancel releases).

Keys (docs/keys.md): ``exc:{<id>}`` hash (``doc`` JSON, ``state``, ``claim``), ``exc:all`` and
``exc:open`` sorted sets of ids by creation time, ``exc:open:<kind>`` the open ids of one kind.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..adapters.base import ChannelError
from ..core.config import Config
from ..core.errors import Conflict, InvalidRequest, InvsyncError, NotFound, StoreUnavailable
from ..core.events import EventLine, OrderCreated, ShipTo
from ..engine import keys
from ..engine.engine import Engine
from ..engine.models import Line, Outcome, SkuState
from ..metrics import definitions as m

__all__ = [
    "ACTIONS",
    "EXCEPTION_ERRORS",
    "KINDS",
    "ActionNotPossible",
    "AlreadyResolved",
    "ExceptionQueue",
    "ExceptionRecord",
    "Option",
    "OutageTracker",
    "UnknownAction",
    "UnknownException",
    "backorder_eta",
    "exception_id",
    "exception_routes",
]

log = structlog.get_logger("invsync.exceptions")

DAY_MS = 86_400_000
#: Largest page of ``GET /v1/exceptions``.
MAX_PAGE = 500
#: Records kept in ``exc:all`` (the oldest resolved ones drop out of listings, not the store).
ALL_KEPT = 100_000

#: Kind -> the short prefix of its ids.
KINDS: dict[str, str] = {
    "oversold": "OVS",
    "unroutable": "UNR",
    "cancel_after_fulfilment": "CAF",
    "channel_unreachable": "CHU",
    "drift": "DRF",
    "unknown_sku": "SKU",
    "bad_event": "BAD",
}

#: Kind -> action -> its downstream effect (what the operator is offered).
ACTIONS: dict[str, dict[str, str]] = {
    "oversold": {
        "backorder": "keep the order open until the incoming units arrive (expected date recorded)",
        "reroute": "reserve the order again now, from any location that has the stock",
        "cancel": "cancel the order line; the channel must be told",
        "substitute": "reserve the order with another SKU in place of the missing one",
        "dismiss": "close the exception and change nothing",
    },
    "unroutable": {
        "reroute": "reserve the order again now, from any location that has the stock",
        "backorder": "keep the order open until the incoming units arrive (expected date recorded)",
        "cancel": "cancel the order line; the channel must be told",
        "substitute": "reserve the order with another SKU in place of the missing one",
        "dismiss": "close the exception and change nothing",
    },
    "unknown_sku": {
        "substitute": "reserve the order with a stocked SKU in place of the unknown one",
        "reroute": "try the reservation again (the SKU may be stocked by now)",
        "cancel": "cancel the order line; the channel must be told",
        "dismiss": "close the exception and change nothing",
    },
    "cancel_after_fulfilment": {
        "cancel": "release whatever is still reserved; the shipped units come back as a return",
        "dismiss": "keep the order as fulfilled; the cancellation is not applied",
    },
    "channel_unreachable": {
        "resync": "push every SKU's current value to the channel again",
        "dismiss": "close the exception (it also closes itself when the channel answers)",
    },
    "drift": {
        "push_ours": "send our availability to the channel again, over its quantity",
        "dismiss": "close the exception and change nothing",
    },
    "bad_event": {
        "dismiss": "close the exception; the event stays refused (send a corrected one)",
    },
}

STATES = ("open", "auto_resolved", "resolved")


def record_key(exception_id: str) -> str:
    """The hash of one exception record."""
    return f"exc:{{{exception_id}}}"


ALL_INDEX = "exc:all"
OPEN_INDEX = "exc:open"


def open_kind_index(kind: str) -> str:
    """The open exceptions of one kind, by creation time."""
    return f"exc:open:{kind}"


# --- errors ------------------------------------------------------------------------------------


class UnknownException(NotFound):
    """No exception with this id."""

    code = "UNKNOWN_EXCEPTION"


class AlreadyResolved(Conflict):
    """The exception is resolved already (or being resolved right now)."""

    code = "ALREADY_RESOLVED"


class UnknownAction(InvalidRequest):
    """An action this kind of exception does not offer."""

    code = "UNKNOWN_ACTION"


class ActionNotPossible(Conflict):
    """The action is offered but cannot be applied now (e.g. no incoming stock to backorder)."""

    code = "ACTION_NOT_POSSIBLE"


#: Code -> type of the queue's own errors (the CLI's client maps answers back by code).
EXCEPTION_ERRORS: dict[str, type[InvsyncError]] = {
    cls.code: cls for cls in (UnknownException, AlreadyResolved, UnknownAction, ActionNotPossible)
}


# --- the record --------------------------------------------------------------------------------


class Option(msgspec.Struct, frozen=True, kw_only=True):
    """An action an operator may take, and what it does downstream."""

    action: str
    effect: str
    possible: bool = True
    why_not: str | None = None


class ExceptionRecord(msgspec.Struct, kw_only=True):
    """One exception as kept in ``exc:{<id>}`` (``doc``) and answered by the API."""

    id: str
    kind: str
    state: str = "open"
    summary: str
    channel: str | None = None
    order_id: str | None = None
    sku: str | None = None
    event_id: str | None = None
    details: dict[str, Any] = {}
    options: list[Option] = []
    created_ms: int
    updated_ms: int
    resolved_ms: int | None = None
    resolved_by: str | None = None
    action: str | None = None
    resolution: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = []


_decode_record = msgspec.json.Decoder(ExceptionRecord).decode
_encode = msgspec.json.Encoder().encode


class ResolveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/exceptions/{id}/resolve``."""

    action: str
    by: str = "operator"
    sku: str | None = None
    note: str | None = None


# --- pure rules --------------------------------------------------------------------------------


def exception_id(kind: str, *cause: str) -> str:
    """A short id derived from the kind and its cause (the same cause gives the same id)."""
    digest = hashlib.blake2b("\x1f".join((kind, *cause)).encode(), digest_size=5).hexdigest()
    return f"{KINDS[kind]}-{digest}"


def backorder_eta(
    incoming: Mapping[str, int],
    short: Mapping[str, int],
    lead_days: int,
    now_ms: int,
    due: Mapping[str, int] | None = None,
) -> tuple[int | None, str | None]:
    """When the missing units are expected: (ms, None), or (None, why not). ``incoming`` and
    ``short`` are SKU -> units (incoming over the order's locations; units missing); ``due`` is
    SKU -> the date its incoming units are due where a count said so (else ``lead_days``).
    The last SKU to arrive dates the whole order."""
    lacking = {sku: n for sku, n in short.items() if incoming.get(sku, 0) < n}
    if not short:
        return None, "nothing is short"
    if lacking:
        detail = ", ".join(
            f"{s}: {incoming.get(s, 0)} incoming, {n} short" for s, n in lacking.items()
        )
        return None, f"no incoming units cover the shortage ({detail})"
    fallback = now_ms + lead_days * DAY_MS
    return max((due or {}).get(sku, fallback) for sku in short), None


def shortfall(
    shortages: Sequence[Mapping[str, Any]], lines: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """SKU -> units missing: from the engine's shortages, else the order's whole lines."""
    out: dict[str, int] = {}
    for s in shortages:
        sku = str(s.get("sku"))
        out[sku] = out.get(sku, 0) + max(0, int(s.get("requested", 0)) - int(s.get("free", 0)))
    if not any(out.values()):
        out = {}
        for line in lines:
            out[str(line["sku"])] = out.get(str(line["sku"]), 0) + int(line["qty"])
    return out


class OutageTracker:
    """Channel id -> when its breaker left ``closed``; says which outages became exceptions.

    ``changed`` is called from the breaker's on_change (sync); ``due``/``recovered`` are read by
    the queue's periodic tick. No I/O here.
    """

    def __init__(self) -> None:
        self.since: dict[str, float] = {}
        self.recovered: set[str] = set()

    def changed(self, channel: str, closed: bool, now: float) -> None:
        """The breaker of ``channel`` changed state."""
        if closed:
            if self.since.pop(channel, None) is not None:
                self.recovered.add(channel)
        else:
            self.since.setdefault(channel, now)
            self.recovered.discard(channel)

    def due(self, now: float, after_s: float) -> dict[str, float]:
        """Channels unreachable for at least ``after_s``: channel -> outage start."""
        return {ch: t for ch, t in self.since.items() if now - t >= after_s}

    def take_recovered(self) -> set[str]:
        """Channels whose breaker closed since the last call."""
        out, self.recovered = self.recovered, set()
        return out


# --- the queue ---------------------------------------------------------------------------------

#: Routes and reserves an order again: (outcome, None) or (None, shortages). The processor's.
ReserveAgain = Callable[[OrderCreated], Awaitable[tuple[Outcome | None, list[dict[str, Any]]]]]
#: Channel id -> (can the channel be told of a cancellation, why not).
CancelSupport = Callable[[str], tuple[bool, str]]
#: (channel, order id, [(sku, qty)] or None for the whole order, reason): cancel on the channel
#: through its adapter; raises the adapter's ChannelError when the channel refuses.
CancelOnChannel = Callable[[str, str, list[tuple[str, int]] | None, str], Awaitable[None]]
#: (channel, sku or None): re-send our value of one SKU, or every SKU (full sync).
Repush = Callable[[str, str | None], Awaitable[None]]
#: Tells SKU actors of a state changed by an action (the processor's notify).
Notify = Callable[[SkuState, int], Awaitable[None]]
#: A new or changed record (the live feed's ``{"type": "exception", ...}``).
Publish = Callable[[ExceptionRecord], Awaitable[None] | None]


async def _no_notify(state: SkuState, accepted_ms: int) -> None:
    return None


def _no_cancel(channel: str) -> tuple[bool, str]:
    return False, "no channel adapter is wired to send cancellations"


async def _no_repush(channel: str, sku: str | None) -> None:
    raise ActionNotPossible("re-pushing to a channel is not wired in this process")


class ExceptionQueue:
    """Records, lists and resolves exceptions; ``raise_*`` are the producers' entry points."""

    def __init__(
        self,
        engine: Engine,
        config: Callable[[], Config],
        *,
        reserve_again: ReserveAgain | None = None,
        cancel_support: CancelSupport = _no_cancel,
        cancel_on_channel: CancelOnChannel | None = None,
        repush: Repush = _no_repush,
        publish: Publish | None = None,
        notify: Notify | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._redis: aioredis.Redis = engine.redis
        self._config = config
        self.reserve_again = reserve_again
        self._cancel_support = cancel_support
        self._cancel_on_channel = cancel_on_channel
        self._repush = repush
        self.publish = publish
        self._notify: Notify = notify or _no_notify
        self._clock = clock
        self.outages = OutageTracker()
        #: channel -> id of its open channel_unreachable record
        self._outage_ids: dict[str, str] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- reads ----------------------------------------------------------------------------

    async def get(self, exception_id: str) -> ExceptionRecord:
        """The record, or UnknownException."""
        keys.check_id(exception_id, "exception id")
        raw = await self._call(self._redis.hget(record_key(exception_id), "doc"))
        if raw is None:
            raise UnknownException(f"no exception {exception_id!r}")
        return _decode_record(raw)

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
            ids = await self._call(
                self._redis.zrevrangebyscore(index, top, "-inf", start=start, num=chunk)
            )
            if not ids:
                break
            start += len(ids)
            async with self._redis.pipeline(transaction=False) as pipe:
                for raw_id in ids:
                    pipe.hget(record_key(_text(raw_id)), "doc")
                docs = await self._call(pipe.execute())
            for raw in docs:
                if raw is None:
                    continue
                rec = _decode_record(raw)
                if (state is None or rec.state == state) and (kind is None or rec.kind == kind):
                    if channel is None or rec.channel == channel:
                        out.append(rec)
                        if len(out) >= limit:
                            break
        return out

    async def open_counts(self) -> dict[str, int]:
        """Kind -> open exceptions (for ``invsync_exceptions_open``)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for kind in KINDS:
                pipe.zcard(open_kind_index(kind))
            counts = await self._call(pipe.execute())
        return dict(zip(KINDS, (int(c) for c in counts), strict=True))

    async def sample_metrics(self) -> None:
        """Set ``invsync_exceptions_open{kind}`` from the store."""
        for kind, n in (await self.open_counts()).items():
            m.EXCEPTIONS_OPEN.labels(kind=kind).set(n)

    # -- writing --------------------------------------------------------------------------

    async def _create(self, record: ExceptionRecord) -> ExceptionRecord:
        """Store ``record`` unless its id exists (then the stored one is returned); apply the
        configured policy to a new one."""
        key = record_key(record.id)
        created = await self._call(self._redis.hsetnx(key, "doc", _encode(record)))
        if not created:
            existing = await self.get(record.id)
            if existing.state == "open":
                await self._index_open(existing)  # a crash between the two writes: re-index
            return existing
        await self._call(self._redis.hset(key, "state", "open"))
        await self._index_open(record)
        log.warning(
            "exception_opened",
            id=record.id,
            kind=record.kind,
            channel=record.channel,
            order=record.order_id,
            sku=record.sku,
            summary=record.summary,
        )
        await self._published(record)
        action = self._config().exceptions.auto_resolve.get(record.kind)
        if action is not None:
            record = await self._auto(record, action)
        return record

    async def _index_open(self, record: ExceptionRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(ALL_INDEX, {record.id: record.created_ms}, nx=True)
            pipe.zadd(OPEN_INDEX, {record.id: record.created_ms}, nx=True)
            pipe.zadd(open_kind_index(record.kind), {record.id: record.created_ms}, nx=True)
            pipe.zremrangebyrank(ALL_INDEX, 0, -ALL_KEPT - 1)
            await self._call(pipe.execute())

    async def _auto(self, record: ExceptionRecord, action: str) -> ExceptionRecord:
        option = next((o for o in record.options if o.action == action), None)
        why = option.why_not if option else f"{record.kind} does not offer {action!r}"
        eta = record.details.get("backorder_until_ms")
        within = self._config().exceptions.backorder_within_days
        if action == "backorder" and eta is not None and eta - self._now_ms() > within * DAY_MS:
            option, why = None, f"incoming stock is expected after {within} days"
        if option is None or not option.possible:
            log.info("exception_policy_skipped", id=record.id, action=action, reason=why)
            record.attempts.append(
                {"action": action, "by": "policy", "ok": False, "why": why, "ms": self._now_ms()}
            )
            await self._save(record)
            return record
        try:
            return await self.resolve(record.id, action, by="policy", auto=True)
        except (ActionNotPossible, AlreadyResolved) as exc:
            log.info("exception_policy_skipped", id=record.id, action=action, reason=exc.message)
            return await self.get(record.id)

    async def _save(self, record: ExceptionRecord) -> None:
        record.updated_ms = self._now_ms()
        await self._call(
            self._redis.hset(
                record_key(record.id), mapping={"doc": _encode(record), "state": record.state}
            )
        )

    async def _published(self, record: ExceptionRecord) -> None:
        if self.publish is None:
            return
        result = self.publish(record)
        if result is not None:
            await result

    # -- producers ------------------------------------------------------------------------

    def _new(self, kind: str, cause: Sequence[str], summary: str, **fields: Any) -> ExceptionRecord:
        now = self._now_ms()
        options = fields.pop("options", None)
        if options is None:
            options = [Option(action=a, effect=e) for a, e in ACTIONS[kind].items()]
        return ExceptionRecord(
            id=exception_id(kind, *cause),
            kind=kind,
            summary=summary,
            options=options,
            created_ms=now,
            updated_ms=now,
            **fields,
        )

    async def raise_order_problem(
        self,
        kind: str,
        event: OrderCreated,
        shortages: list[dict[str, Any]],
        *,
        reason: str,
        last_take: Mapping[str, Mapping[str, Any]] | None = None,
        unknown: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> ExceptionRecord:
        """An order that could not be reserved: ``oversold``, ``unroutable`` or ``unknown_sku``.
        The details say what each channel was last sent, the incoming stock, and what took the
        last unit where known; the options say whether a backorder is possible and until when."""
        lines = [msgspec.to_builtins(x) for x in event.lines]
        short = {s: 0 for s in unknown} if unknown else shortfall(shortages, lines)
        skus = list(short) or [x.sku for x in event.lines]
        config = self._config()
        pushed: dict[str, Any] = {}
        incoming: dict[str, int] = {}
        due: dict[str, int] = {}
        stock: dict[str, Any] = {}
        for sku in skus:
            raw = await self._call(self._redis.hget(keys.pushed(event.channel), sku))
            parsed = keys.parse_pushed(raw)
            if parsed is not None:
                available, version, at_ms = parsed
                pushed[sku] = {
                    "available": available,
                    "version": version,
                    "at_ms": at_ms,
                    "at": _date(at_ms, seconds=True) if at_ms is not None else None,
                }
            else:
                pushed[sku] = None
            state = await self._engine.stock(sku)
            if state is not None:
                stock[sku] = {
                    "version": state.version,
                    "locations": msgspec.to_builtins(state.locations),
                }
                incoming[sku] = sum(loc.incoming for loc in state.locations.values())
                dates = await self._call(self._redis.hgetall(keys.incoming_eta(sku)))
                dated = [
                    int(v) for loc, v in dates.items()
                    if state.locations.get(_text(loc)) is not None
                    and state.locations[_text(loc)].incoming > 0
                ]
                if dated:
                    due[sku] = min(dated)  # the first delivery; enough when it covers the need
        now = self._now_ms()
        eta, why_not = backorder_eta(
            incoming, short, config.exceptions.incoming_lead_days, now, due
        )
        options = []
        for action, effect in ACTIONS[kind].items():
            if action == "backorder":
                if eta is not None:
                    effect = f"{effect}: expected by {_date(eta)}"
                options.append(
                    Option(action=action, effect=effect, possible=eta is not None, why_not=why_not)
                )
            elif action == "cancel":
                notify, why = self._cancel_support(event.channel)
                if not notify:
                    effect = f"{effect} (not automatic: {why})"
                options.append(Option(action=action, effect=effect))
            else:
                options.append(Option(action=action, effect=effect))
        details: dict[str, Any] = {
            "reason": reason,
            "lines": lines,
            "shortages": shortages,
            "short": short,
            "pushed_to_channel": pushed,
            "stock": stock,
            "incoming": incoming,
            "backorder_until_ms": eta,
            "incoming_due_ms": due,
            "ship_to": msgspec.to_builtins(event.ship_to) if event.ship_to else None,
            "hold_id": event.hold_id,
        }
        if unknown:
            details["unknown_skus"] = list(unknown)
        if last_take:
            details["last_unit_taken_by"] = {s: dict(v) for s, v in last_take.items() if s in short}
        if extra:
            details.update(extra)
        first = skus[0] if skus else None
        pushed_first = pushed.get(first) if first else None
        shown = (
            f"; {event.channel} was last sent {pushed_first['available']}" if pushed_first else ""
        )
        summary = f"order {event.channel}/{event.order_id}: {reason}{shown}"
        record = self._new(
            kind,
            (event.channel, event.order_id, event.id),
            summary,
            channel=event.channel,
            order_id=event.order_id,
            sku=first,
            event_id=event.id,
            details=details,
            options=options,
        )
        return await self._create(record)

    async def raise_cancel_after_fulfilment(
        self, event_id: str, channel: str, order_id: str, message: str
    ) -> ExceptionRecord:
        """An ``order.cancelled`` refused because units of the order were already fulfilled."""
        order = await self._engine.order(channel, order_id)
        lines = [msgspec.to_builtins(x) for x in order.lines] if order else []
        fulfilled = sum(x.fulfilled for x in order.lines) if order else 0
        reserved = sum(x.reserved for x in order.lines) if order else 0
        record = self._new(
            "cancel_after_fulfilment",
            (channel, order_id, event_id),
            f"order {channel}/{order_id}: cancelled after {fulfilled} unit(s) were fulfilled",
            channel=channel,
            order_id=order_id,
            sku=order.lines[0].sku if order and order.lines else None,
            event_id=event_id,
            details={
                "engine": message,
                "order_state": order.state if order else None,
                "fulfilled": fulfilled,
                "still_reserved": reserved,
                "lines": lines,
            },
        )
        return await self._create(record)

    async def raise_bad_event(
        self,
        event_id: str,
        code: str,
        message: str,
        *,
        source: str,
        channel: str | None = None,
        order_id: str | None = None,
        sku: str | None = None,
        event_type: str | None = None,
    ) -> ExceptionRecord:
        """An event that was refused (undecodable at intake, or refused by the engine)."""
        record = self._new(
            "bad_event",
            (source, event_id, code),
            f"{event_type or 'event'} {event_id} refused: {code}: {message}",
            channel=channel,
            order_id=order_id,
            sku=sku,
            event_id=event_id,
            details={"code": code, "message": message, "source": source, "type": event_type},
        )
        return await self._create(record)

    async def report_drift(
        self, channel: str, sku: str, theirs: int, ours: int
    ) -> ExceptionRecord | None:
        """A channel's read-back quantity differs from what we last pushed; None when equal."""
        if theirs == ours:
            return None
        m.DRIFT.labels(channel=channel).inc()
        record = self._new(
            "drift",
            (channel, sku, str(theirs), str(ours)),
            f"{channel} shows {theirs} of {sku}, we have {ours}",
            channel=channel,
            sku=sku,
            details={"theirs": theirs, "ours": ours, "difference": theirs - ours},
        )
        return await self._create(record)

    def breaker_changed(self, channel: str, closed: bool) -> None:
        """A channel actor's breaker changed state (its on_change hook; sync, no I/O)."""
        self.outages.changed(channel, closed, self._clock())

    async def tick(self) -> None:
        """Open ``channel_unreachable`` records for outages past the threshold, auto-resolve
        the records of channels that answer again, and sample the open counts."""
        now = self._clock()
        after = self._config().exceptions.unreachable_after_s
        for channel, since in self.outages.due(now, after).items():
            if channel in self._outage_ids:
                continue
            since_ms = int(since * 1000)
            record = self._new(
                "channel_unreachable",
                (channel, str(since_ms)),
                f"channel {channel} unreachable since {_date(since_ms, seconds=True)}",
                channel=channel,
                details={"since_ms": since_ms, "threshold_s": after},
            )
            self._outage_ids[channel] = (await self._create(record)).id
        for channel in self.outages.take_recovered():
            exception = self._outage_ids.pop(channel, None)
            if exception is None:
                continue
            record = await self.get(exception)
            if record.state == "open":
                await self._close(
                    record,
                    "recovered",
                    by="breaker",
                    auto=True,
                    resolution={"recovered_ms": self._now_ms()},
                )
        await self.sample_metrics()

    # -- resolving ------------------------------------------------------------------------

    async def resolve(
        self,
        exception_id: str,
        action: str,
        *,
        by: str = "operator",
        sku: str | None = None,
        note: str | None = None,
        auto: bool = False,
    ) -> ExceptionRecord:
        """Run ``action`` for real and record it. UnknownException (404), AlreadyResolved
        (409), UnknownAction (400), ActionNotPossible (409: nothing changed). A re-route that
        finds no stock leaves the record open with the attempt recorded."""
        record = await self.get(exception_id)
        if record.state != "open":
            raise AlreadyResolved(
                f"exception {exception_id} is {record.state} (by {record.resolved_by}, "
                f"action {record.action})"
            )
        offered = ACTIONS[record.kind]
        if action not in offered:
            raise UnknownAction(
                f"{record.kind} offers {', '.join(offered)}; not {action!r}", field="action"
            )
        if action == "substitute" and not sku:
            raise InvalidRequest("substitute needs the SKU to use instead (sku)", field="sku")
        key = record_key(exception_id)
        # One resolver at a time, across processes: the first to claim it runs the action.
        if not await self._call(self._redis.hsetnx(key, "claim", f"{action}:{by}")):
            raise AlreadyResolved(f"exception {exception_id} is being resolved already")
        try:
            outcome = await self._run(record, action, sku)
        except BaseException:
            await self._call(self._redis.hdel(key, "claim"))
            raise
        attempt = {"action": action, "by": by, "ms": self._now_ms(), **outcome}
        if note:
            attempt["note"] = note
        if not outcome.get("ok", True):
            record.attempts.append(attempt)
            await self._save(record)
            await self._call(self._redis.hdel(key, "claim"))
            log.info("exception_action_failed", id=record.id, action=action, by=by)
            await self._published(record)
            return record
        outcome.pop("ok", None)
        if note:
            outcome["note"] = note
        return await self._close(record, action, by=by, auto=auto, resolution=outcome)

    async def _close(
        self,
        record: ExceptionRecord,
        action: str,
        *,
        by: str,
        auto: bool,
        resolution: dict[str, Any],
    ) -> ExceptionRecord:
        now = self._now_ms()
        record.state = "auto_resolved" if auto else "resolved"
        record.action, record.resolved_by, record.resolved_ms = action, by, now
        record.resolution = resolution
        record.updated_ms = now
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                record_key(record.id), mapping={"doc": _encode(record), "state": record.state}
            )
            pipe.zrem(OPEN_INDEX, record.id)
            pipe.zrem(open_kind_index(record.kind), record.id)
            await self._call(pipe.execute())
        log.info("exception_resolved", id=record.id, kind=record.kind, action=action, by=by)
        await self._published(record)
        return record

    async def _run(self, record: ExceptionRecord, action: str, sku: str | None) -> dict[str, Any]:
        """Apply the action; the outcome to record (``ok`` False: nothing changed)."""
        match action:
            case "dismiss":
                return {}
            case "backorder":
                return await self._backorder(record)
            case "reroute":
                return await self._reserve(record, None)
            case "substitute":
                assert sku is not None
                keys.check_sku(sku)
                return await self._reserve(record, sku)
            case "cancel":
                return await self._cancel(record)
            case "resync":
                assert record.channel is not None
                await self._repush(record.channel, None)
                return {"resynced": True}
            case "push_ours":
                assert record.channel is not None and record.sku is not None
                await self._repush(record.channel, record.sku)
                return {"pushed": record.details.get("ours")}
        raise UnknownAction(f"no such action {action!r}")  # pragma: no cover - checked above

    async def _backorder(self, record: ExceptionRecord) -> dict[str, Any]:
        option = next((o for o in record.options if o.action == "backorder"), None)
        eta = record.details.get("backorder_until_ms")
        if option is None or not option.possible or eta is None:
            raise ActionNotPossible(
                f"cannot backorder: {option.why_not if option else 'not offered'}"
            )
        await self._update_rejection(record, state="backordered", expected_ms=eta)
        return {"expected_ms": eta, "expected_date": _date(eta), "order_state": "backordered"}

    async def _reserve(self, record: ExceptionRecord, substitute: str | None) -> dict[str, Any]:
        if self.reserve_again is None:
            raise ActionNotPossible("re-routing is not wired in this process")
        assert record.channel is not None and record.order_id is not None
        lines = [
            EventLine(sku=x["sku"], qty=x["qty"], location=x.get("location"))
            for x in record.details.get("lines", [])
        ]
        if not lines:
            raise ActionNotPossible(f"exception {record.id} names no order lines")
        event_id = record.event_id or f"exc-{record.id}"
        if substitute is not None:
            replaced = set(record.details.get("short") or {}) or {lines[0].sku}
            lines = [
                EventLine(sku=substitute, qty=x.qty, location=x.location)
                if x.sku in replaced
                else x
                for x in lines
            ]
            event_id = f"{event_id}#substitute-{substitute}"[:200]
        ship_to = record.details.get("ship_to")
        event = OrderCreated(
            id=event_id,
            channel=record.channel,
            order_id=record.order_id,
            lines=lines,
            ship_to=msgspec.convert(ship_to, ShipTo) if ship_to else None,
            hold_id=record.details.get("hold_id"),
        )
        try:
            outcome, shortages = await self.reserve_again(event)
        except InvsyncError as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            return {"ok": False, "code": exc.code, "why": exc.message}
        if outcome is None:
            return {
                "ok": False,
                "why": "no location can serve the order now",
                "shortages": shortages,
            }
        await self._call(self._redis.delete(keys.rejection(record.channel, record.order_id)))
        order = outcome.order
        return {
            "order_state": order.state if order else "reserved",
            "locations": sorted({x.location for x in order.lines}) if order else [],
            "lines": [msgspec.to_builtins(x) for x in order.lines] if order else [],
            **({"substituted": substitute} if substitute else {}),
        }

    async def _cancel(self, record: ExceptionRecord) -> dict[str, Any]:
        assert record.channel is not None
        out: dict[str, Any] = {}
        order_id = record.order_id
        order = await self._engine.order(record.channel, order_id) if order_id else None
        # The channel first: if it refuses, nothing here has changed and the record stays open.
        notified, why = self._cancel_support(record.channel)
        if record.kind == "cancel_after_fulfilment":
            notified, why = False, "the channel cancelled this order itself"
        if notified and order_id is not None and self._cancel_on_channel is not None:
            lines = _cancel_lines(record, order)
            try:
                await self._cancel_on_channel(
                    record.channel, order_id, lines, f"invsync exception {record.id}"
                )
            except ChannelError as exc:
                raise ActionNotPossible(
                    f"{record.channel} refused the cancellation ({type(exc).__name__}): "
                    f"{exc.message}; nothing was changed, resolve again when it answers"
                ) from exc
            out["channel_notified"] = True
            out["channel_lines"] = None if lines is None else [list(x) for x in lines]
        else:
            out["channel_notified"] = False
            out["channel_not_notified_because"] = (
                why if not notified else "the record names no order to cancel"
            )
        if order_id is not None:
            reserved = sum(x.reserved for x in order.lines) if order else 0
            if order is not None and reserved > 0:
                result = await self._engine.release(
                    f"exc-{record.id}-cancel",
                    record.channel,
                    order_id,
                    [Line(sku=x.sku, qty=x.reserved) for x in order.lines if x.reserved > 0],
                    reason="exception",
                )
                out["released"] = reserved
                out["order_state"] = result.order.state if result.order else None
                for state in result.skus.values():
                    await self._notify(state, 0)
            else:
                out["released"] = 0
            await self._update_rejection(record, state="cancelled")
        return out

    async def _update_rejection(self, record: ExceptionRecord, **fields: Any) -> None:
        assert record.channel is not None and record.order_id is not None
        key = keys.rejection(record.channel, record.order_id)
        raw = await self._call(self._redis.get(key))
        if raw is None:
            return
        doc = msgspec.json.decode(raw)
        doc.update(fields, exception=record.id)
        await self._call(self._redis.set(key, msgspec.json.encode(doc), xx=True, keepttl=True))

    # -- plumbing -------------------------------------------------------------------------

    @staticmethod
    async def _call(awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc


def _cancel_lines(record: ExceptionRecord, order: Any) -> list[tuple[str, int]] | None:
    """The lines to cancel on the channel: the record's order lines (a rejected order was never
    reserved, so its event's lines), None (the whole order) when neither is known."""
    raw = record.details.get("lines")
    if isinstance(raw, list) and raw:
        return [(str(x["sku"]), int(x["qty"])) for x in raw if isinstance(x, dict)]
    if order is not None and order.lines:
        return [(x.sku, x.qty) for x in order.lines]
    return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _date(ms: int, *, seconds: bool = False) -> str:
    fmt = "%Y-%m-%dT%H:%M:%SZ" if seconds else "%Y-%m-%d"
    return time.strftime(fmt, time.gmtime(ms / 1000))


# --- HTTP --------------------------------------------------------------------------------------


def exception_routes(queue: Callable[[], ExceptionQueue]) -> list[Route]:
    """``GET /v1/exceptions``, ``GET /v1/exceptions/{id}``, ``POST .../{id}/resolve``, for
    ``build_app(ctx, routes=...)`` (behind its bearer check and JSON error mapping)."""
    from .http import JsonResponse, _guarded

    async def list_exceptions(request: Request) -> Response:
        params = request.query_params
        state: str | None = params.get("state", "open")
        if state == "all":
            state = None
        try:
            limit = int(params.get("limit", "100"))
            before = int(params["before"]) if "before" in params else None
        except ValueError as exc:
            raise InvalidRequest("limit and before must be integers") from exc
        records = await queue().query(
            state=state,
            kind=params.get("kind"),
            channel=params.get("channel"),
            limit=limit,
            before_ms=before,
        )
        body: dict[str, Any] = {"items": msgspec.to_builtins(records)}
        if len(records) == limit:
            body["next_before"] = records[-1].created_ms
        return JsonResponse(body)

    async def get_exception(request: Request) -> Response:
        return JsonResponse(msgspec.to_builtins(await queue().get(request.path_params["id"])))

    async def resolve_exception(request: Request) -> Response:
        body = await request.body()
        try:
            ask = msgspec.json.decode(body or b"{}", type=ResolveRequest)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"bad resolve request: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"malformed JSON: {exc}") from exc
        record = await queue().resolve(
            request.path_params["id"], ask.action, by=ask.by, sku=ask.sku, note=ask.note
        )
        return JsonResponse(msgspec.to_builtins(record))

    return [
        Route("/v1/exceptions", _guarded(list_exceptions), methods=["GET"]),
        Route("/v1/exceptions/{id}", _guarded(get_exception), methods=["GET"]),
        Route("/v1/exceptions/{id}/resolve", _guarded(resolve_exception), methods=["POST"]),
    ]
