"""The generic events of ``POST /v1/events`` and ``invsync/in/...`` MQTT topics (the spec's JSON).

A tagged msgspec union on ``type``: decoding validates shape and types and names the bad path.
``id`` is the idempotency key end to end.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated

import msgspec

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\s{}]+$")]
Ref = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
SKU_PATTERN = r"^[^\s{}]+$"
SKU_MAX_LENGTH = 128
Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=SKU_MAX_LENGTH, pattern=SKU_PATTERN)]
Positive = Annotated[int, msgspec.Meta(gt=0, lt=10**12)]
Count = Annotated[int, msgspec.Meta(ge=0, lt=10**12)]
Delta = Annotated[int, msgspec.Meta(gt=-(10**12), lt=10**12)]
IsoDate = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]


_SKU_RE = re.compile(SKU_PATTERN)


def holdable_sku(sku: str) -> bool:
    """Whether invsync can keep stock of ``sku`` (the events' rule: 1-128 characters, no
    whitespace or braces). Marketplace adapters skip order lines whose SKU is not, like lines
    without a SKU (gift wrap, tips): such a line cannot be a stocked SKU, and one of them must
    not make the whole order unreadable."""
    return 0 < len(sku) <= SKU_MAX_LENGTH and _SKU_RE.match(sku) is not None


class _Base(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"
):
    id: Id


class EventLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``qty`` units of ``sku``; ``location`` only where the sender already knows it."""

    sku: Sku
    qty: Positive
    location: Ref | None = None


class ShipTo(msgspec.Struct, frozen=True, kw_only=True):
    """Where an order ships (the router's input for SLA and cost)."""

    country: str | None = None
    region: str | None = None
    postal_code: str | None = None


class OrderCreated(_Base, frozen=True, tag="order.created"):
    """A new order on ``channel``: reserve every line, all or none."""

    channel: Ref
    order_id: Ref
    lines: Annotated[list[EventLine], msgspec.Meta(min_length=1, max_length=500)]
    ship_to: ShipTo | None = None
    hold_id: Ref | None = None


class OrderCancelled(_Base, frozen=True, tag="order.cancelled"):
    """Cancel the whole order, or the given lines."""

    channel: Ref
    order_id: Ref
    lines: list[EventLine] | None = None


class OrderFulfilled(_Base, frozen=True, tag="order.fulfilled"):
    """Ship the whole order, or the given lines."""

    channel: Ref
    order_id: Ref
    lines: list[EventLine] | None = None


class OrderReturned(_Base, frozen=True, tag="order.returned"):
    """Units came back at ``location`` (which may be a store, not where they shipped from)."""

    channel: Ref
    order_id: Ref
    location: Ref
    lines: list[EventLine] | None = None


class StockAdjusted(_Base, frozen=True, tag="stock.adjusted"):
    """``on_hand`` of ``sku`` at ``location`` changed by ``delta`` (received, damaged, lost ...)."""

    location: Ref
    sku: Sku
    delta: Delta
    reason: str = "adjustment"


class StockCounted(_Base, frozen=True, tag="stock.counted"):
    """A physical count: absolute ``on_hand`` (and optionally other states) at ``location``.

    ``incoming_eta`` (``YYYY-MM-DD``, with ``incoming``) is when the incoming units are due:
    a backorder offered for an oversold order is dated by it.
    """

    location: Ref
    sku: Sku
    on_hand: Count | None = None
    safety_stock: Count | None = None
    damaged: Count | None = None
    incoming: Count | None = None
    incoming_eta: IsoDate | None = None

    def __post_init__(self) -> None:
        if self.incoming_eta is not None:
            if self.incoming is None:
                raise ValueError("incoming_eta needs incoming: the units it dates")
            try:
                datetime.date.fromisoformat(self.incoming_eta)
            except ValueError:
                raise ValueError(f"incoming_eta {self.incoming_eta!r} is not a date") from None

    def incoming_eta_ms(self) -> int | None:
        """``incoming_eta`` as epoch ms (midnight UTC), or None."""
        if self.incoming_eta is None:
            return None
        day = datetime.date.fromisoformat(self.incoming_eta)
        return int(datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
                   .timestamp() * 1000)


Event = (
    OrderCreated | OrderCancelled | OrderFulfilled | OrderReturned | StockAdjusted | StockCounted
)

_one = msgspec.json.Decoder(Event)
_many = msgspec.json.Decoder(Event | list[Event])
_encoder = msgspec.json.Encoder()


class BadEvent(ValueError):
    """Malformed event input; the message names the path (``$[2].lines[0].qty``)."""


def decode_events(body: bytes) -> list[Event]:
    """One event object or a list of them, validated; raises BadEvent naming what is wrong."""
    try:
        decoded = _many.decode(body)
    except msgspec.ValidationError as exc:
        raise BadEvent(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise BadEvent(f"malformed JSON: {exc}") from exc
    events = decoded if isinstance(decoded, list) else [decoded]
    if not events:
        raise BadEvent("no events: send one event object or a non-empty list")
    if len(events) > 10_000:
        raise BadEvent(f"too many events in one request: {len(events)} (at most 10000)")
    for i, event in enumerate(events):
        if isinstance(event, StockCounted) and all(
            v is None for v in (event.on_hand, event.safety_stock, event.damaged, event.incoming)
        ):
            raise BadEvent(f"$[{i}]: stock.counted needs on_hand or another state to count")
    return events


def convert_events(objects: list[dict[str, object]]) -> list[Event]:
    """Events from already parsed JSON objects (webhook adapters translate into these)."""
    events: list[Event] = []
    for i, obj in enumerate(objects):
        try:
            events.append(msgspec.convert(obj, Event))
        except msgspec.ValidationError as exc:
            raise BadEvent(f"$[{i}]: {exc}") from exc
    return events


def decode_event(raw: bytes) -> Event:
    """One event as recorded in the intake stream."""
    event: Event = _one.decode(raw)
    return event


def encode_event(event: Event) -> bytes:
    """The canonical JSON of an event (what the intake stream records)."""
    return _encoder.encode(event)


def event_kind(event: Event) -> str:
    """The event's ``type`` (a bounded metric label)."""
    return event.__struct_config__.tag  # type: ignore[return-value]


def event_skus(event: Event) -> list[str]:
    """The SKUs an event names (empty for whole-order operations: the order record knows)."""
    if isinstance(event, StockAdjusted | StockCounted):
        return [event.sku]
    return [line.sku for line in event.lines or ()]


def event_order_key(event: Event) -> str | None:
    """``channel/order_id`` for order events, else None."""
    if isinstance(event, StockAdjusted | StockCounted):
        return None
    return f"{event.channel}/{event.order_id}"
