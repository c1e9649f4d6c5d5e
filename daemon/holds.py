"""Holds through the daemon: ``hold.placed`` / ``hold.released`` events, orders that convert a
hold, lapsed holds, and what ``GET /v1/holds/{hold_id}`` shows.

A hold is routed like an order (the channel's locations, SLA, cost; safety stock last) and then
placed with one atomic script (``engine.place_hold``), so availability drops on every channel at
once. The reference behaviour is that of storefront checkout reservations: Saleor's stock
reservations (https://docs.saleor.io/developer/checkout/stock: units held for a checkout for a
configured time, shown as unavailable to others, converted on completion, given back when the
time runs out) and Medusa's reservation items
(https://docs.medusajs.com/resources/references/medusa-workflows/steps/reserveInventoryStep: a
reservation per line and location). Our own rules, where those leave it open: all lines or none
unless ``partial``, idempotent by hold id, a refusal says which lines fall short, an order naming
a lapsed hold reserves like any other order.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
import structlog

from ..core.config import Config
from ..core.errors import (
    Conflict,
    InvalidRequest,
    InvsyncError,
    OutOfStock,
    UnknownSku,
)
from ..core.events import HoldPlaced, HoldReleased, OrderCreated
from ..engine import keys
from ..engine.availability import Bundle, LocationStock
from ..engine.engine import Engine
from ..engine.models import Line, Order, Outcome, SkuState
from ..engine.routing import RoutingPolicy, free_units, plan, routing_policy
from ..metrics import definitions as m

__all__ = ["HoldDesk", "hold_lapsed", "hold_view", "iso_ms"]

log = structlog.get_logger("invsync.holds")

Notify = Callable[[SkuState, int], Awaitable[None]]
#: Routing again after losing a race for the last units (like orders).
PLACE_ATTEMPTS = 3


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 in UTC with its zone (``2026-12-03T20:15:00.000+00:00``)."""
    if ms is None:
        return None
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def hold_view(hold: Order, now_ms: int) -> dict[str, Any]:
    """The body of ``GET /v1/holds/{hold_id}`` for a placed hold."""
    converted = None
    if hold.converted_to is not None:
        channel, _, order_id = hold.converted_to.partition("/")
        converted = {"channel": channel, "order_id": order_id}
    expires = hold.expires_ms
    return {
        "hold_id": hold.order_id,
        "channel": hold.channel,
        "state": hold.state,
        "lines": [
            {"sku": x.sku, "location": x.location, "qty": x.qty, "reserved": x.reserved}
            for x in hold.lines
        ],
        "requested": msgspec.to_builtins(hold.requested) if hold.requested else None,
        "created": iso_ms(hold.created_ms),
        "updated": iso_ms(hold.updated_ms),
        "expires": iso_ms(expires),
        "expires_in_s": None
        if expires is None or hold.state != "held"
        else max(0.0, round((expires - now_ms) / 1000, 3)),
        "converted_to": converted,
    }


def _per_line_capacity(
    lines: Sequence[Line],
    stock: Mapping[str, Mapping[str, LocationStock]],
    policy: RoutingPolicy,
) -> list[int]:
    """How many units of each line the channel's locations could hold, lines taken in order
    (two lines of one SKU share its units; a bundle counts whole kits)."""
    allowed = [s.id for s in policy.sites if s.allowed]
    left: dict[str, int] = {}
    out: list[int] = []
    for line in lines:
        bundle: Bundle | None = policy.bundles.get(line.sku)
        kit = dict(bundle.components) if bundle else {line.sku: 1}
        places = [line.location] if line.location is not None else allowed
        for sku in kit:
            if sku not in left:
                left[sku] = sum(free_units(stock.get(sku, {}).get(loc)) for loc in places)
        can = min(min(left[sku] // units for sku, units in kit.items()), line.qty)
        for sku, units in kit.items():
            left[sku] -= can * units
        out.append(can)
    return out


class HoldDesk:
    """Places, releases and converts holds for the processor; reads the config on every call."""

    def __init__(
        self,
        engine: Engine,
        config: Callable[[], Config],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._config = config
        self._clock = clock

    # -- placing ----------------------------------------------------------------------------

    async def place(self, event: HoldPlaced) -> Outcome:
        """Route and place the hold; OutOfStock (with ``shortages``), UnknownSku or Conflict
        when it cannot be served, HoldExists when the id is taken by another hold."""
        engine = self._engine
        lines = [Line(sku=x.sku, qty=x.qty, location=x.location) for x in event.lines]
        existing = await engine.hold(event.hold_id)
        if existing is not None:
            # The id is taken: the script decides (same units while held: a duplicate; else
            # HOLD_EXISTS) before it looks at any stock, so no routing is needed.
            where = existing.lines[0].location
            again = (
                [Line(sku=x.sku, qty=x.qty, location=where) for x in existing.lines]
                if event.partial
                else [Line(sku=x.sku, qty=x.qty, location=where) for x in lines]
            )
            return await self._place(event, again)
        policy = routing_policy(self._config(), event.channel)
        last: OutOfStock | None = None
        for _ in range(PLACE_ATTEMPTS):
            stock = await self._stock(lines, policy)
            capacity = _per_line_capacity(lines, stock, policy)
            asked = lines
            if event.partial:
                asked = [
                    Line(sku=x.sku, qty=n, location=x.location)
                    for x, n in zip(lines, capacity, strict=True)
                    if n > 0
                ]
            routed = asked if asked and all(x.location for x in asked) else None
            if routed is None and asked:
                decision = plan(asked, stock, event.ship_to, policy)
                routed = decision.assignment
                if routed is None and decision.unroutable_code in ("sla", "no_locations"):
                    raise Conflict(
                        f"hold {event.hold_id}: {decision.unroutable_reason}",
                        hold_id=event.hold_id,
                    )
                if routed is None and decision.unroutable_code == "unknown_sku":
                    raise UnknownSku(f"hold {event.hold_id}: {decision.unroutable_reason}")
            if routed is None:
                raise self._short(event, lines, capacity)
            try:
                return await self._place(event, routed)
            except OutOfStock as exc:
                last = exc  # lost a race for the last units: route again
        assert last is not None
        raise last

    async def _place(self, event: HoldPlaced, routed: list[Line]) -> Outcome:
        outcome = await self._engine.place_hold(
            event.id, event.hold_id, routed, event.ttl_s, channel=event.channel
        )
        if not outcome.duplicate:
            m.HOLDS.labels(channel=event.channel, outcome="placed").inc()
            log.info("hold_placed", hold=event.hold_id, channel=event.channel)
        return outcome

    @staticmethod
    def _short(event: HoldPlaced, lines: list[Line], capacity: list[int]) -> OutOfStock:
        short = [
            {"sku": x.sku, "requested": x.qty, "available": n}
            for x, n in zip(lines, capacity, strict=True)
            if n < x.qty
        ]
        if not short:  # enough units in all, but no assignment ships them (kits apart)
            return OutOfStock(
                f"hold {event.hold_id}: the locations cannot ship these lines together",
                shortages=[],
            )
        what = ", ".join(f"{x['sku']} {x['available']} of {x['requested']}" for x in short)
        return OutOfStock(
            f"hold {event.hold_id} cannot be fully served ({what}); nothing held "
            '(send "partial": true to hold what can be served)',
            shortages=short,
        )

    async def _stock(
        self, lines: Sequence[Line], policy: RoutingPolicy
    ) -> dict[str, Mapping[str, LocationStock]]:
        needed: list[str] = []
        for line in lines:
            bundle = policy.bundles.get(line.sku)
            for sku in bundle.components if bundle else (line.sku,):
                if sku not in needed:
                    needed.append(sku)
        states = await self._engine.stocks(needed)
        return {sku: states[sku].stock() if sku in states else {} for sku in needed}

    # -- releasing --------------------------------------------------------------------------

    async def release(self, event: HoldReleased) -> Outcome:
        """Release the hold now; UnknownHold, or NothingReserved naming its state."""
        if event.channel is not None:
            held = await self._engine.hold(event.hold_id)
            if held is not None and held.channel != event.channel:
                raise InvalidRequest(
                    f"hold {event.hold_id} belongs to channel {held.channel!r}, "
                    f"not {event.channel!r}",
                    field="channel",
                )
        outcome = await self._engine.release_hold(event.id, event.hold_id)
        if not outcome.duplicate and outcome.order is not None:
            m.HOLDS.labels(channel=outcome.order.channel, outcome="released").inc()
            log.info("hold_released", hold=event.hold_id)
        return outcome

    async def refused(self, event: HoldPlaced | HoldReleased, exc: InvsyncError) -> None:
        """Keep why a hold could not be placed, for ``GET /v1/holds/{hold_id}``."""
        if not isinstance(event, HoldPlaced) or exc.code == "HOLD_EXISTS":
            return
        m.HOLDS.labels(channel=event.channel, outcome="refused").inc()
        record = {
            "hold_id": event.hold_id,
            "channel": event.channel,
            "state": "refused",
            "event": event.id,
            "code": exc.code,
            "message": exc.message,
            "shortages": exc.details.get("shortages", []),
            "requested": [msgspec.to_builtins(x) for x in event.lines],
            "decided": iso_ms(int(self._clock() * 1000)),
        }
        await self._engine.redis.set(
            keys.hold_refusal(event.hold_id),
            msgspec.json.encode(record),
            ex=int(self._config().redis.idempotency_ttl_s),
        )

    # -- converting -------------------------------------------------------------------------

    async def held(self, event: OrderCreated) -> Order | None:
        """The hold an order converts, while it still holds units (else None: the order
        reserves like any other)."""
        if event.hold_id is None:
            return None
        hold = await self._engine.hold(event.hold_id)
        return hold if hold is not None and hold.state == "held" else None

    @staticmethod
    def pinned(
        hold: Order, lines: Sequence[Line], bundles: Mapping[str, Bundle]
    ) -> list[Line] | None:
        """The order's lines at the hold's locations when the hold covers every unit of them
        (the held units become the order's), else None (the order is routed)."""
        if any(x.location is not None or x.sku in bundles for x in lines):
            return None
        left = {i: x.reserved for i, x in enumerate(hold.lines)}
        out: list[Line] = []
        for line in lines:
            need = line.qty
            for i, x in enumerate(hold.lines):
                if need and x.sku == line.sku and left[i] > 0:
                    q = min(need, left[i])
                    out.append(Line(sku=line.sku, qty=q, location=x.location))
                    left[i] -= q
                    need -= q
            if need:
                return None
        return out

    @staticmethod
    def credited(
        hold: Order, sku: str, stock: Mapping[str, LocationStock]
    ) -> dict[str, LocationStock]:
        """``stock`` of ``sku`` with the hold's units counted free again: what the order may use,
        since converting releases them in the same atomic step."""
        out = dict(stock)
        for x in hold.lines:
            if x.sku == sku and x.location in out and x.reserved:
                s = out[x.location]
                out[x.location] = msgspec.structs.replace(
                    s, reserved=max(0, s.reserved - x.reserved)
                )
        return out

    async def converted(self, event: OrderCreated, outcome: Outcome) -> None:
        """Count a conversion (the order took the hold's units)."""
        if event.hold_id is None or outcome.duplicate:
            return
        hold = await self._engine.hold(event.hold_id)
        if hold is not None and hold.converted_to == f"{event.channel}/{event.order_id}":
            m.HOLDS.labels(channel=hold.channel, outcome="converted").inc()
            log.info("hold_converted", hold=event.hold_id, order=event.order_id)


async def hold_lapsed(outcome: Outcome, notify: Notify | None) -> None:
    """A hold the reaper released: counted, logged, and its SKUs' new availability pushed."""
    if outcome.order is not None:
        m.HOLDS.labels(channel=outcome.order.channel, outcome="expired").inc()
        log.info("hold_expired", hold=outcome.order.order_id)
    if notify is not None:
        for state in outcome.skus.values():
            await notify(state, 0)
