"""Applies recorded events to the engine, routes orders, and tells SKU actors what changed.

Events of one batch run concurrently, except that events naming the same SKU or the same order
run in stream order (a count then an adjustment of one SKU must not swap). An event the engine
refuses (out of stock, below reserved, unknown order) is a decided outcome, recorded and
counted; only a store outage leaves the batch unacknowledged, to be processed again. Any other
error of an event (a bug, a reply the store gives for that event only) is reported back to the
intake consumer for that entry alone, which retries it and in the end sets it aside.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import structlog

from ..core.config import Config
from ..core.errors import InvsyncError, OutOfStock, StoreUnavailable
from ..core.events import (
    HoldPlaced,
    HoldReleased,
    OrderCancelled,
    OrderCreated,
    OrderFulfilled,
    OrderReturned,
    StockAdjusted,
    StockCounted,
    event_hold_key,
    event_kind,
    event_order_key,
    event_skus,
)
from ..engine import keys
from ..engine.availability import LocationStock
from ..engine.engine import Engine
from ..engine.models import Line, Outcome, SkuState
from ..engine.routing import RouteDecision, plan, routing_policy
from ..metrics import definitions as m
from .holds import HoldDesk
from .intake import Deferred, Entry, is_outage

if TYPE_CHECKING:
    from .incidents import ExceptionQueue

log = structlog.get_logger("invsync.processor")

Notify = Callable[[SkuState, int], Awaitable[None]]


class OnOrder(Protocol):
    """(channel, order id, ship_to=...): an order's reservations may have changed."""

    def __call__(
        self, channel: str, order_id: str, *, ship_to: dict[str, Any] | None = None
    ) -> Awaitable[object]: ...

ROUTE_ATTEMPTS = 3
_RESULTS_KEPT = 10_000
#: SKUs whose last reservation is remembered (an oversell's "what took the last unit").
_TAKES_KEPT = 50_000
#: Refusals of an ``order.cancelled`` that mean units were fulfilled already (when they were).
_CANCEL_AFTER_FULFILMENT = ("NOTHING_RESERVED", "EXCEEDS_RESERVED")


def _position(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``"<ms>-<seq>"``) as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


_counters: dict[tuple[str, str], Any] = {}


def _count(kind: str, outcome: str) -> None:
    """``invsync_events_total{kind, outcome} += 1``, the labelled child cached (per event)."""
    child = _counters.get((kind, outcome))
    if child is None:
        child = _counters[(kind, outcome)] = m.EVENTS.labels(kind=kind, outcome=outcome)
    child.inc()


def _lines(lines: list[Any] | None) -> list[Line] | None:
    if lines is None:
        return None
    return [Line(sku=x.sku, qty=x.qty, location=x.location) for x in lines]


class Processor:
    """Turns intake entries into engine calls; ``notify`` receives every new SKU state."""

    def __init__(
        self,
        engine: Engine,
        config: Callable[[], Config],
        notify: Notify,
        *,
        clock: Callable[[], float] = time.time,
        exceptions: ExceptionQueue | None = None,
    ) -> None:
        self._engine = engine
        self.holds = HoldDesk(engine, config, clock=clock)
        #: Where refused events and unmet orders become exception records (None: only logged).
        self.exceptions = exceptions
        # sku -> the latest order that reserved it (in memory: "if known" after a restart)
        self._last_take: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._config = config
        self._notify = notify
        self._clock = clock
        # event id -> (stream entry id that produced it, outcome)
        self._results: OrderedDict[str, tuple[tuple[int, int], dict[str, Any]]] = OrderedDict()
        # event id -> the latest entry recorded for it: an outcome of an earlier entry with the
        # same id (a re-sent event) is stale until this one is processed.
        self._expected: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        #: Hears of every order whose reservations an event changed (daemon/fulfillment.py).
        self.on_order: OnOrder | None = None

    # -- batches --------------------------------------------------------------------------

    async def handle_batch(self, entries: list[Entry]) -> dict[str, BaseException]:
        """Process a batch; returns entry id -> error of each entry whose event failed (an
        error of its own; an entry behind a failed one of the same SKU or order is ``Deferred``).
        Raises StoreUnavailable (the batch to be retried) if the store failed any entry.

        No error of one event cancels the others: each is caught in its own task."""
        failures: dict[str, BaseException] = {}
        last: dict[str, tuple[asyncio.Task[None], str]] = {}
        async with asyncio.TaskGroup() as group:
            for entry in entries:
                lane_keys = [f"sku:{s}" for s in event_skus(entry.event)]
                order_key = event_order_key(entry.event)
                if order_key is not None:
                    lane_keys.append(f"order:{order_key}")
                if (hold_key := event_hold_key(entry.event)) is not None:
                    lane_keys.append(f"order:{hold_key}")  # a conversion follows its hold
                before = [last[k] for k in lane_keys if k in last]
                task = group.create_task(self._after(before, entry, failures))
                for k in lane_keys:
                    last[k] = (task, entry.id)
        outage = next((exc for exc in failures.values() if is_outage(exc)), None)
        if outage is not None:
            if isinstance(outage, StoreUnavailable):
                raise outage
            raise StoreUnavailable(f"store unavailable: {outage}") from outage
        return failures

    async def _after(
        self,
        before: list[tuple[asyncio.Task[None], str]],
        entry: Entry,
        failures: dict[str, BaseException],
    ) -> None:
        for task, _ in before:
            await task
        blocked = next((entry_id for _, entry_id in before if entry_id in failures), None)
        if blocked is not None:
            failures[entry.id] = Deferred(f"waits for entry {blocked}")
            return
        try:
            await self.apply(entry)
        except Exception as exc:  # one event's failure is its own, reported to the consumer
            failures[entry.id] = exc
            if not is_outage(exc):
                log.error(
                    "event_processing_failed",
                    event_id=entry.event.id,
                    entry=entry.id,
                    type=event_kind(entry.event),
                    error=f"{type(exc).__name__}: {exc}",
                    exc_info=exc,
                )

    # -- one event ------------------------------------------------------------------------

    async def apply(self, entry: Entry) -> None:
        """Apply one event; record and count its outcome. StoreUnavailable propagates."""
        event, kind = entry.event, event_kind(entry.event)
        try:
            outcome = await self._dispatch(entry)
        except StoreUnavailable:
            raise
        except InvsyncError as exc:
            _count(kind, "refused")
            log.warning(
                "event_refused", event_id=event.id, type=kind, code=exc.code, reason=exc.message
            )
            await self._refused(entry, exc)  # before _done: a waiter then finds the record
            self._done(entry, {"outcome": "refused", "code": exc.code, "message": exc.message})
            return
        if outcome is None:  # an order that could not be met: recorded as oversold
            return
        label = "duplicate" if outcome.duplicate else "applied"
        _count(kind, label)
        for state in outcome.skus.values():
            await self._notify(state, entry.accepted_ms)
        await self._order_changed(outcome, getattr(event, "ship_to", None))
        result: dict[str, Any] = {
            "outcome": label,
            "skus": {sku: state.version for sku, state in outcome.skus.items()},
        }
        if outcome.order is not None:
            result["order_state"] = outcome.order.state
        self._done(entry, result)

    async def _date_incoming(self, event: StockCounted) -> None:
        """Keep when the location's incoming units are due (none incoming: no date)."""
        key = keys.incoming_eta(event.sku)
        eta = event.incoming_eta_ms()
        if event.incoming and eta is not None:
            await self._engine.redis.hset(key, event.location, eta)
        else:
            await self._engine.redis.hdel(key, event.location)

    async def _dispatch(self, entry: Entry) -> Outcome | None:
        engine, event = self._engine, entry.event
        match event:
            case StockCounted():
                outcome = None
                for state in ("on_hand", "safety_stock", "damaged", "incoming"):
                    qty = getattr(event, state)
                    if qty is not None:
                        event_id = event.id if state == "on_hand" else f"{event.id}#{state}"
                        outcome = await engine.count(
                            event_id, event.sku, event.location, qty, state=state
                        )
                if event.incoming is not None:
                    await self._date_incoming(event)
                return outcome
            case StockAdjusted():
                return await engine.adjust(
                    event.id, event.sku, event.location, event.delta, reason=event.reason
                )
            case OrderCreated():
                return await self._reserve(event, entry)
            case OrderCancelled():
                return await engine.release(
                    event.id, event.channel, event.order_id, _lines(event.lines)
                )
            case OrderFulfilled():
                return await engine.fulfil(
                    event.id, event.channel, event.order_id, _lines(event.lines)
                )
            case OrderReturned():
                return await engine.return_(
                    event.id, event.channel, event.order_id, event.location, _lines(event.lines)
                )
            case HoldPlaced():
                return await self.holds.place(event)
            case HoldReleased():
                return await self.holds.release(event)
        raise AssertionError(f"unhandled event {event!r}")  # pragma: no cover

    async def _refused(self, entry: Entry, exc: InvsyncError) -> None:
        """A refused event as an exception record: cancel after fulfilment, or a bad event."""
        event = entry.event
        if isinstance(event, HoldPlaced | HoldReleased):
            # A checkout that cannot hold stock, or one released after it lapsed, is the
            # storefront's answer to read (GET /v1/holds/...), not an operator's incident.
            await self.holds.refused(event, exc)
            return
        if self.exceptions is None or not 400 <= exc.http_status < 500:
            return
        if isinstance(event, OrderCancelled) and exc.code in _CANCEL_AFTER_FULFILMENT:
            order = await self._engine.order(event.channel, event.order_id)
            if order is not None and any(line.fulfilled > 0 for line in order.lines):
                await self.exceptions.raise_cancel_after_fulfilment(
                    event.id, event.channel, event.order_id, exc.message
                )
                return
            if order is not None and order.state == "cancelled":
                # Already cancelled here (an operator resolved an exception with ``cancel``,
                # which told the channel; this is the channel's echo): nothing to do.
                log.info("order_already_cancelled", channel=event.channel,
                         order_id=event.order_id, event_id=event.id)
                return
        if isinstance(event, OrderFulfilled) and exc.code in _CANCEL_AFTER_FULFILMENT:
            order = await self._engine.order(event.channel, event.order_id)
            if order is not None and all(line.reserved == 0 for line in order.lines) and any(
                line.fulfilled > 0 for line in order.lines
            ):
                # Shipped already (the warehouse reported it first): the marketplace's own
                # "fulfilled" message repeats what is known, nothing to do.
                log.info("order_already_fulfilled", channel=event.channel,
                         order_id=event.order_id, event_id=event.id)
                return
        if isinstance(event, OrderCancelled) and exc.code == "UNKNOWN_ORDER":
            rejected = await self._engine.redis.get(keys.rejection(event.channel, event.order_id))
            if rejected is not None:
                # An order that was never reserved (oversold): cancelling it changes no stock.
                log.info("rejected_order_cancelled", channel=event.channel,
                         order_id=event.order_id, event_id=event.id)
                return
            if entry.source.startswith("poll:"):
                # A polled channel (eBay) shows an order first when it is already cancelled:
                # created and cancelled between two polls, it never held any stock here.
                log.info("unseen_order_cancelled", channel=event.channel,
                         order_id=event.order_id, event_id=event.id)
                return
        skus = event_skus(event)
        await self.exceptions.raise_bad_event(
            event.id,
            exc.code,
            exc.message,
            source="processor",
            channel=getattr(event, "channel", None),
            order_id=getattr(event, "order_id", None),
            sku=skus[0] if skus else None,
            event_type=event_kind(event),
        )

    async def _reserve(self, event: OrderCreated, entry: Entry) -> Outcome | None:
        outcome, shortages, decision = await self._route_and_reserve(event)
        await self._explain(event, decision)
        if outcome is not None:
            self._observe_reservation(entry.accepted_ms)
            return outcome
        await self._oversold(event, shortages, entry, decision)
        return None

    async def _explain(self, event: OrderCreated, decision: RouteDecision | None) -> None:
        """Keep the router's explanation for ``GET /v1/orders/...`` (candidates, scores, why)."""
        if decision is None:
            return
        record = {
            "late": decision.late,
            "unroutable_code": decision.unroutable_code,
            "unroutable_reason": decision.unroutable_reason,
            "explanation": msgspec.to_builtins(decision.explanation),
        }
        await self._engine.redis.set(
            keys.routing(event.channel, event.order_id),
            msgspec.json.encode(record),
            ex=int(self._config().redis.idempotency_ttl_s),
        )

    async def reserve_again(
        self, event: OrderCreated
    ) -> tuple[Outcome | None, list[dict[str, Any]]]:
        """Route and reserve an order now (an exception's re-route or substitute); SKU actors
        hear of the new states. (outcome, []) or (None, shortages)."""
        outcome, shortages, decision = await self._route_and_reserve(event)
        await self._explain(event, decision)
        if outcome is not None:
            for state in outcome.skus.values():
                await self._notify(state, 0)
            await self._order_changed(outcome, event.ship_to)
        return outcome, shortages

    async def _order_changed(self, outcome: Outcome, ship_to: object) -> None:
        """Tell the fulfillment handoff (``on_order``) that an order's reservations may have
        changed; duplicates too, so a handoff lost in a crash is queued on the re-delivery."""
        order = outcome.order
        if self.on_order is None or order is None or order.kind != "order":
            return
        where = msgspec.to_builtins(ship_to) if ship_to is not None else None
        await self.on_order(order.channel, order.order_id, ship_to=where)

    async def route_and_reserve(
        self, event: OrderCreated
    ) -> tuple[Outcome | None, list[dict[str, Any]]]:
        """Route the order and reserve it, routing again after a lost race (bounded)."""
        outcome, shortages, _ = await self._route_and_reserve(event)
        return outcome, shortages

    async def _route_and_reserve(
        self, event: OrderCreated
    ) -> tuple[Outcome | None, list[dict[str, Any]], RouteDecision | None]:
        config = self._config()
        policy = routing_policy(config, event.channel)
        bundles = config.bundle_map()
        decision: RouteDecision | None = None
        lines = [Line(sku=x.sku, qty=x.qty, location=x.location) for x in event.lines]
        needed: list[str] = []
        for line in lines:
            parts = bundles[line.sku].components if line.sku in bundles else {line.sku: 1}
            needed.extend(s for s in parts if s not in needed)
        shortages: list[dict[str, Any]] = []
        existing = await self._engine.order(event.channel, event.order_id)
        if existing is not None and existing.kind == "order":
            # Already reserved (a batch replayed after a crash, or the same order id again):
            # the script answers "duplicate" for this event id, ORDER_EXISTS for another one.
            # Routing first would see the order's own units as taken and call it oversold.
            done = [Line(sku=x.sku, qty=x.qty, location=x.location) for x in existing.lines]
            outcome = await self._engine.reserve(
                event.id, event.channel, event.order_id, done, hold_id=event.hold_id
            )
            return outcome, [], None
        hold = await self.holds.held(event)  # converted: its units are the order's to take
        pinned = None if hold is None else self.holds.pinned(hold, lines, bundles)
        for _ in range(ROUTE_ATTEMPTS):
            if all(line.location is not None for line in lines):
                routed: list[Line] | None = lines  # the sender chose the locations
            elif pinned is not None:
                routed, pinned = pinned, None  # the hold's own units (once: then route)
            else:
                stock: dict[str, Mapping[str, LocationStock]] = {}
                for sku in needed:
                    state = await self._engine.stock(sku)
                    stock[sku] = state.stock() if state else {}
                    if hold is not None:
                        stock[sku] = self.holds.credited(hold, sku, stock[sku])
                decision = plan(lines, stock, event.ship_to, policy)
                routed = decision.assignment
            if routed is None:
                break
            try:
                outcome = await self._engine.reserve(
                    event.id, event.channel, event.order_id, routed, hold_id=event.hold_id
                )
            except OutOfStock as exc:
                shortages = exc.shortages  # lost a race with another order: route again
                if all(line.location is not None for line in lines):
                    break
                hold = await self.holds.held(event)  # released or converted meanwhile?
                continue
            self._took(event, outcome)
            await self.holds.converted(event, outcome)
            return outcome, [], decision
        return None, shortages, decision

    def _took(self, event: OrderCreated, outcome: Outcome) -> None:
        if outcome.duplicate:
            return
        take = {
            "event": event.id,
            "channel": event.channel,
            "order_id": event.order_id,
            "ms": int(self._clock() * 1000),
        }
        for sku in outcome.skus:
            self._last_take[sku] = take
            self._last_take.move_to_end(sku)
        while len(self._last_take) > _TAKES_KEPT:
            self._last_take.popitem(last=False)

    def _observe_reservation(self, accepted_ms: int) -> None:
        if accepted_ms:
            m.RESERVATION_LATENCY.observe(max(0.0, self._clock() - accepted_ms / 1000))

    async def _oversold(
        self,
        event: OrderCreated,
        shortages: list[dict[str, Any]],
        entry: Entry,
        decision: RouteDecision | None = None,
    ) -> None:
        """Record an order no location could serve; it is visible in GET /v1/orders/...
        and, as ``oversold`` or ``unknown_sku`` (a SKU never stocked), in the exception queue."""
        self._observe_reservation(entry.accepted_ms)
        unknown = []
        for line in event.lines:
            if line.sku not in self._config().bundle_map() and line.sku not in unknown:
                if await self._engine.stock(line.sku) is None:
                    unknown.append(line.sku)
        unroutable = (
            not unknown
            and decision is not None
            and decision.unroutable_code in ("sla", "no_locations")
        )
        state = "unknown_sku" if unknown else "unroutable" if unroutable else "oversold"
        record = {
            "channel": event.channel,
            "order_id": event.order_id,
            "state": state,
            "event": event.id,
            "lines": [msgspec.to_builtins(x) for x in event.lines],
            "shortages": shortages,
            "decided_ms": int(self._clock() * 1000),
            "ship_to": msgspec.to_builtins(event.ship_to) if event.ship_to else None,
        }
        try:
            await self._engine.redis.set(
                keys.rejection(event.channel, event.order_id),
                msgspec.json.encode(record),
                nx=True,
                ex=int(self._config().redis.idempotency_ttl_s),
            )
        except (ConnectionError, TimeoutError) as exc:  # pragma: no cover - redis-py wraps these
            raise StoreUnavailable(str(exc)) from exc
        if state == "oversold":  # a SKU never stocked, or out of SLA reach, is not an oversell
            m.OVERSELLS.labels(channel=event.channel).inc()
        m.EVENTS.labels(kind="order.created", outcome="oversold").inc()
        log.warning(
            "order_oversold",
            channel=event.channel,
            order=event.order_id,
            event_id=event.id,
            shortages=shortages,
            unknown_skus=unknown,
        )
        if self.exceptions is not None:
            if unknown:
                reason = f"never stocked: {', '.join(unknown)}"
            elif unroutable and decision is not None:
                reason = decision.unroutable_reason or "no location can meet this order's SLA"
            else:
                reason = "no location can serve this order"
            await self.exceptions.raise_order_problem(
                state,
                event,
                shortages,
                reason=reason,
                last_take={
                    s: self._last_take[s] for s in event_skus(event) if s in self._last_take
                },
                unknown=unknown,
            )
        self._done(
            entry,
            {
                "outcome": "refused",
                "code": "UNKNOWN_SKU" if unknown else "OVERSOLD",
                "message": f"never stocked: {', '.join(unknown)}"
                if unknown
                else "no location can serve this order",
            },
        )

    # -- waiting for outcomes (the operator CLI) ------------------------------------------

    def expect(self, event_ids: list[str], entry_ids: list[str]) -> None:
        """Note that ``event_ids`` were just recorded as stream entries ``entry_ids``: waiters
        get the outcome of these entries, not a remembered one of an earlier send."""
        for event_id, entry_id in zip(event_ids, entry_ids, strict=True):
            position = _position(entry_id)
            done = self._results.get(event_id)
            if done is not None and done[0] >= position:
                continue  # already processed (the consumer was quicker than the caller)
            self._expected[event_id] = position
            self._expected.move_to_end(event_id)
            while len(self._expected) > _RESULTS_KEPT:
                self._expected.popitem(last=False)

    def _current(self, event_id: str) -> dict[str, Any] | None:
        done = self._results.get(event_id)
        if done is None:
            return None
        expected = self._expected.get(event_id)
        return done[1] if expected is None or done[0] >= expected else None

    def _done(self, entry: Entry, result: dict[str, Any]) -> None:
        event_id = entry.event.id
        self._results[event_id] = (_position(entry.id), result)
        self._results.move_to_end(event_id)
        while len(self._results) > _RESULTS_KEPT:
            self._results.popitem(last=False)
        if self._current(event_id) is None:
            return  # an earlier entry of a re-sent event: its waiters want the later one
        self._expected.pop(event_id, None)
        for future in self._waiters.pop(event_id, []):
            if not future.done():
                future.set_result(result)

    async def wait_processed(self, event_ids: list[str], timeout: float) -> dict[str, Any]:
        """Event id -> outcome, waiting at most ``timeout`` s; unfinished ones are "pending"."""
        loop = asyncio.get_running_loop()
        futures: dict[str, asyncio.Future[dict[str, Any]]] = {}
        for event_id in event_ids:
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            current = self._current(event_id)
            if current is not None:
                future.set_result(current)
            else:
                self._waiters.setdefault(event_id, []).append(future)
            futures[event_id] = future
        if futures:
            await asyncio.wait(futures.values(), timeout=timeout)
        out: dict[str, Any] = {}
        for event_id, future in futures.items():
            if future.done():
                out[event_id] = future.result()
            else:
                future.cancel()
                waiting = self._waiters.get(event_id, [])
                if future in waiting:
                    waiting.remove(future)
                if not waiting:
                    self._waiters.pop(event_id, None)
                out[event_id] = {"outcome": "pending"}
        return out
