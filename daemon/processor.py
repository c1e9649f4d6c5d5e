"""Applies recorded events to the engine, routes orders, and tells SKU actors what changed.

Events of one batch run concurrently, except that events naming the same SKU or the same order
run in stream order (a count then an adjustment of one SKU must not swap). An event the engine
refuses (out of stock, below reserved, unknown order) is a decided outcome, recorded and
counted; only a store outage leaves the batch unacknowledged, to be processed again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
import structlog

from ..actors.router import route
from ..engine import keys
from ..engine.availability import LocationStock
from ..engine.engine import Engine
from ..engine.errors import InvsyncError, OutOfStock, StoreUnavailable
from ..engine.models import Line, Outcome, SkuState
from ..metrics import definitions as m
from .config import Config
from .events import (
    OrderCancelled,
    OrderCreated,
    OrderFulfilled,
    OrderReturned,
    StockAdjusted,
    StockCounted,
    event_kind,
    event_order_key,
    event_skus,
)
from .intake import Entry

log = structlog.get_logger("invsync.processor")

Notify = Callable[[SkuState, int], Awaitable[None]]
ROUTE_ATTEMPTS = 3
_RESULTS_KEPT = 10_000


def _position(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``"<ms>-<seq>"``) as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


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
    ) -> None:
        self._engine = engine
        self._config = config
        self._notify = notify
        self._clock = clock
        # event id -> (stream entry id that produced it, outcome)
        self._results: OrderedDict[str, tuple[tuple[int, int], dict[str, Any]]] = OrderedDict()
        # event id -> the latest entry recorded for it: an outcome of an earlier entry with the
        # same id (a re-sent event) is stale until this one is processed.
        self._expected: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}

    # -- batches --------------------------------------------------------------------------

    async def handle_batch(self, entries: list[Entry]) -> None:
        """Process a batch; raises StoreUnavailable (batch to be retried) on a store outage."""
        last: dict[str, asyncio.Task[None]] = {}
        async with asyncio.TaskGroup() as group:
            for entry in entries:
                lane_keys = [f"sku:{s}" for s in event_skus(entry.event)]
                order_key = event_order_key(entry.event)
                if order_key is not None:
                    lane_keys.append(f"order:{order_key}")
                before = [last[k] for k in lane_keys if k in last]
                task = group.create_task(self._after(before, entry))
                for k in lane_keys:
                    last[k] = task

    async def _after(self, before: list[asyncio.Task[None]], entry: Entry) -> None:
        for task in before:
            await task
        await self.apply(entry)

    # -- one event ------------------------------------------------------------------------

    async def apply(self, entry: Entry) -> None:
        """Apply one event; record and count its outcome. StoreUnavailable propagates."""
        event, kind = entry.event, event_kind(entry.event)
        bound = log.bind(event_id=event.id, type=kind)
        try:
            outcome = await self._dispatch(entry)
        except StoreUnavailable:
            raise
        except InvsyncError as exc:
            m.EVENTS.labels(kind=kind, outcome="refused").inc()
            bound.warning("event_refused", code=exc.code, reason=exc.message)
            self._done(entry, {"outcome": "refused", "code": exc.code, "message": exc.message})
            return
        if outcome is None:  # an order that could not be met: recorded as oversold
            return
        label = "duplicate" if outcome.duplicate else "applied"
        m.EVENTS.labels(kind=kind, outcome=label).inc()
        for state in outcome.skus.values():
            await self._notify(state, entry.accepted_ms)
        result: dict[str, Any] = {
            "outcome": label,
            "skus": {sku: state.version for sku, state in outcome.skus.items()},
        }
        if outcome.order is not None:
            result["order_state"] = outcome.order.state
        self._done(entry, result)

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
        raise AssertionError(f"unhandled event {event!r}")  # pragma: no cover

    async def _reserve(self, event: OrderCreated, entry: Entry) -> Outcome | None:
        accepted_ms = entry.accepted_ms
        config = self._config()
        policy = config.policies().get(event.channel)
        locations = list(policy.locations) if policy else config.location_ids()
        bundles = config.bundle_map()
        lines = [Line(sku=x.sku, qty=x.qty, location=x.location) for x in event.lines]
        needed: list[str] = []
        for line in lines:
            parts = bundles[line.sku].components if line.sku in bundles else {line.sku: 1}
            needed.extend(s for s in parts if s not in needed)
        shortages: list[dict[str, Any]] = []
        for _ in range(ROUTE_ATTEMPTS):
            if all(line.location is not None for line in lines):
                routed: list[Line] | None = lines  # the sender chose the locations
            else:
                stock: dict[str, Mapping[str, LocationStock]] = {}
                for sku in needed:
                    state = await self._engine.stock(sku)
                    stock[sku] = state.stock() if state else {}
                routed = route(lines, stock, locations, bundles)
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
                continue
            self._observe_reservation(accepted_ms)
            return outcome
        await self._oversold(event, shortages, entry)
        return None

    def _observe_reservation(self, accepted_ms: int) -> None:
        if accepted_ms:
            m.RESERVATION_LATENCY.observe(max(0.0, self._clock() - accepted_ms / 1000))

    async def _oversold(
        self, event: OrderCreated, shortages: list[dict[str, Any]], entry: Entry
    ) -> None:
        """Record an order no location could serve; it is visible in GET /v1/orders/..."""
        self._observe_reservation(entry.accepted_ms)
        record = {
            "channel": event.channel,
            "order_id": event.order_id,
            "state": "oversold",
            "event": event.id,
            "lines": [msgspec.to_builtins(x) for x in event.lines],
            "shortages": shortages,
            "decided_ms": int(self._clock() * 1000),
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
        m.OVERSELLS.labels(channel=event.channel).inc()
        m.EVENTS.labels(kind="order.created", outcome="oversold").inc()
        log.warning(
            "order_oversold",
            channel=event.channel,
            order=event.order_id,
            event_id=event.id,
            shortages=shortages,
        )
        self._done(
            entry,
            {
                "outcome": "refused",
                "code": "OVERSOLD",
                "message": "no location can serve this order",
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
