"""Resolution actions, run for real: a backorder dates the rejected order, a re-route or a
substitute reserves it again, a cancel tells the channel then releases, a resync or a push sends
our values to the channel again. The daemon's side effects arrive as hooks; an unwired hook makes
its action ``ActionNotPossible`` (nothing changed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis

from ...adapters.base import ChannelError
from ...core.errors import InvsyncError, StoreUnavailable
from ...core.events import EventLine, OrderCreated, ShipTo
from ...engine import keys
from ...engine.engine import Engine
from ...engine.models import Line, Outcome, SkuState
from .records import ActionNotPossible, ExceptionRecord, UnknownAction
from .rules import cancel_lines, date_text
from .store import call

__all__ = [
    "ActionRunner",
    "CancelOnChannel",
    "CancelSupport",
    "Notify",
    "Repush",
    "ReserveAgain",
]

#: Routes and reserves an order again: (outcome, None) or (None, shortages). The processor's.
ReserveAgain = Callable[[OrderCreated], Awaitable[tuple[Outcome | None, list[dict[str, Any]]]]]
#: Channel id -> (can the channel be told of a cancellation, why not).
CancelSupport = Callable[[str], tuple[bool, str]]
#: (channel, order id, [(sku, qty)] or None for the whole order, reason): cancel on the channel
#: through its adapter; raises the adapter's ChannelError when the channel refuses.
CancelOnChannel = Callable[[str, str, list[tuple[str, int]] | None, str], Awaitable[None]]
#: (channel, sku or None): re-send our value of one SKU, or every SKU (full sync).
Repush = Callable[[str, str | None], Awaitable[None]]
#: (channel, order id, location) -> outcome: send a location its part of an order again.
ResendFulfillment = Callable[[str, str, str], Awaitable[dict[str, Any]]]
#: (channel, order id): an action changed the order's reservations.
OrderChanged = Callable[[str, str], Awaitable[object]]
#: Tells SKU actors of a state changed by an action (the processor's notify).
Notify = Callable[[SkuState, int], Awaitable[None]]


async def _no_notify(state: SkuState, accepted_ms: int) -> None:
    return None


def _no_cancel(channel: str) -> tuple[bool, str]:
    return False, "no channel adapter is wired to send cancellations"


async def _no_repush(channel: str, sku: str | None) -> None:
    raise ActionNotPossible("re-pushing to a channel is not wired in this process")


class ActionRunner:
    """Applies one offered action to a record; returns the outcome to record (``ok`` False:
    nothing changed, the record stays open) or raises ``ActionNotPossible``. A hook left None
    makes its actions not possible (no cancel sent, no re-push, no re-route)."""

    def __init__(
        self,
        engine: Engine,
        *,
        reserve_again: ReserveAgain | None = None,
        cancel_support: CancelSupport | None = None,
        cancel_on_channel: CancelOnChannel | None = None,
        repush: Repush | None = None,
        notify: Notify | None = None,
    ) -> None:
        self._engine = engine
        self._redis: aioredis.Redis = engine.redis
        #: Set after construction by whoever builds the processor (it needs the queue first).
        self.reserve_again = reserve_again
        #: Read by the queue too: a cancel option says when the channel will not be told.
        self.cancel_support: CancelSupport = cancel_support or _no_cancel
        self._cancel_on_channel = cancel_on_channel
        self._repush: Repush = repush or _no_repush
        self._notify: Notify = notify or _no_notify
        #: (channel, order id, location): queue a refused handoff again (daemon/fulfillment.py).
        self.resend_fulfillment: ResendFulfillment | None = None
        #: (channel, order id): an action changed the order (the fulfillment handoff hears it).
        self.order_changed: OrderChanged | None = None

    async def run(self, record: ExceptionRecord, action: str, sku: str | None) -> dict[str, Any]:
        """Apply ``action`` (already checked to be offered by the record's kind)."""
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
            case "resend":
                if self.resend_fulfillment is None:
                    raise ActionNotPossible("fulfillment handoff is not wired in this process")
                location = str(record.details.get("location") or "")
                assert record.channel is not None and record.order_id is not None
                return await self.resend_fulfillment(record.channel, record.order_id, location)
            case "retry_push":
                # Our value now, not the refused one: the SKU may have changed since.
                assert record.channel is not None and record.sku is not None
                await self._repush(record.channel, record.sku)
                return {"repushed": True}
        raise UnknownAction(f"no such action {action!r}")  # pragma: no cover - checked before

    async def _backorder(self, record: ExceptionRecord) -> dict[str, Any]:
        option = next((o for o in record.options if o.action == "backorder"), None)
        eta = record.details.get("backorder_until_ms")
        if option is None or not option.possible or eta is None:
            raise ActionNotPossible(
                f"cannot backorder: {option.why_not if option else 'not offered'}"
            )
        await self._update_rejection(record, state="backordered", expected_ms=eta)
        return {"expected_ms": eta, "expected_date": date_text(eta), "order_state": "backordered"}

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
        await call(self._redis.delete(keys.rejection(record.channel, record.order_id)))
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
        notified, why = self.cancel_support(record.channel)
        if record.kind == "cancel_after_fulfilment":
            notified, why = False, "the channel cancelled this order itself"
        if notified and order_id is not None and self._cancel_on_channel is not None:
            lines = cancel_lines(record, order)
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
                if self.order_changed is not None:
                    await self.order_changed(record.channel, order_id)
            else:
                out["released"] = 0
            await self._update_rejection(record, state="cancelled")
        return out

    async def _update_rejection(self, record: ExceptionRecord, **fields: Any) -> None:
        """Mark the rejected order's record (``rej:{...}``) as the action left it."""
        assert record.channel is not None and record.order_id is not None
        key = keys.rejection(record.channel, record.order_id)
        raw = await call(self._redis.get(key))
        if raw is None:
            return
        doc = msgspec.json.decode(raw)
        doc.update(fields, exception=record.id)
        await call(self._redis.set(key, msgspec.json.encode(doc), xx=True, keepttl=True))
