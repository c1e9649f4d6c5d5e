"""The generic events of ``POST /v1/events`` and ``invsync/in/...`` MQTT topics (the spec's JSON).

A tagged msgspec union on ``type``: decoding validates shape and types and names the bad path.
``id`` is the idempotency key end to end.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any

import msgspec

# One validation for every input (HTTP, webhooks, MQTT, adapters' polls): what the engine would
# refuse later is refused here, with a 400 naming the path. msgspec applies a ``pattern`` with
# ``re.search``, and ``$`` also matches before a final "\n" (so "ORD-NL\n" passed as "ORD-NL"
# and became a second order): every pattern is anchored with ``\A`` and ``\Z``, which match only
# at the very ends. Control characters (C0, DEL, C1) are refused everywhere, free text included.

#: Largest quantity one event may carry: a line's ``qty``, a counted state, ``|delta|``. The
#: store's counters stay far below Redis' 64-bit HINCRBY range (the scripts refuse any counter
#: over ``engine.keys.MAX_QTY``), so no sum of accepted events can overflow one.
MAX_QUANTITY = 10**9
#: Most lines one event may carry (every kind with lines: the same bound).
MAX_LINES = 500
#: Most events one request or message may carry.
MAX_EVENTS = 10_000
_NO_CONTROL = r"[^\x00-\x1f\x7f-\x9f]"

_ID_PATTERN = r"\A[^\s{}\x00-\x1f\x7f-\x9f]+\Z"
_REF_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_ID_PATTERN)]
Ref = Annotated[str, msgspec.Meta(pattern=_REF_PATTERN)]
SKU_PATTERN = _ID_PATTERN
SKU_MAX_LENGTH = 128
Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=SKU_MAX_LENGTH, pattern=SKU_PATTERN)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_QUANTITY)]
Delta = Annotated[int, msgspec.Meta(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]
_DATE_PATTERN = r"\A\d{4}-\d{2}-\d{2}\Z"
_TEXT_PATTERN = rf"\A{_NO_CONTROL}*\Z"
IsoDate = Annotated[str, msgspec.Meta(pattern=_DATE_PATTERN)]
#: Free text (a reason, an address part): bounded, printable.
Text = Annotated[str, msgspec.Meta(max_length=200, pattern=_TEXT_PATTERN)]

#: What each pattern accepts, in words: a refusal says this instead of the regex.
_PATTERN_WORDS = {
    _ID_PATTERN: "without whitespace, braces or control characters",
    _REF_PATTERN: "that is an id of 1 to 64 letters, digits, '_', '.' or '-', starting with "
    "a letter or digit (no whitespace, not even a final newline)",
    _DATE_PATTERN: "that is a date YYYY-MM-DD",
    _TEXT_PATTERN: "text without control characters",
}


def _in_words(message: str) -> str:
    for pattern, words in _PATTERN_WORDS.items():
        message = message.replace(f"matching regex {pattern!r}", words)
    return message


_SKU_RE = re.compile(SKU_PATTERN)


def holdable_sku(sku: str) -> bool:
    """Whether invsync can keep stock of ``sku`` (the events' rule: 1-128 characters, no
    whitespace, braces or control characters). Marketplace adapters skip order lines whose SKU
    is not, like lines without a SKU (gift wrap, tips): such a line cannot be a stocked SKU,
    and one of them must not make the whole order unreadable."""
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


#: An event's lines: at least one, at most MAX_LINES (every kind, as order.created).
Lines = Annotated[list[EventLine], msgspec.Meta(min_length=1, max_length=MAX_LINES)]


class ShipTo(msgspec.Struct, frozen=True, kw_only=True):
    """Where an order ships (the router's input for SLA and cost)."""

    country: Text | None = None
    region: Text | None = None
    postal_code: Text | None = None


class OrderCreated(_Base, frozen=True, tag="order.created"):
    """A new order on ``channel``: reserve every line, all or none."""

    channel: Ref
    order_id: Ref
    lines: Lines
    ship_to: ShipTo | None = None
    hold_id: Ref | None = None


class OrderCancelled(_Base, frozen=True, tag="order.cancelled"):
    """Cancel the whole order, or the given lines."""

    channel: Ref
    order_id: Ref
    lines: Lines | None = None


class OrderFulfilled(_Base, frozen=True, tag="order.fulfilled"):
    """Ship the whole order, or the given lines."""

    channel: Ref
    order_id: Ref
    lines: Lines | None = None


class OrderReturned(_Base, frozen=True, tag="order.returned"):
    """Units came back at ``location`` (which may be a store, not where they shipped from)."""

    channel: Ref
    order_id: Ref
    location: Ref
    lines: Lines | None = None


class StockAdjusted(_Base, frozen=True, tag="stock.adjusted"):
    """``on_hand`` of ``sku`` at ``location`` changed by ``delta`` (received, damaged, lost ...)."""

    location: Ref
    sku: Sku
    delta: Delta
    reason: Text = "adjustment"

    def __post_init__(self) -> None:
        if self.delta == 0:
            raise ValueError("delta must not be 0 (an adjustment that changes nothing)")


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


#: Longest a hold may last: a checkout takes minutes, a B2B quote may take days.
HOLD_MAX_TTL_S = 30 * 86_400


class HoldPlaced(_Base, frozen=True, tag="hold.placed"):
    """Reserve ``lines`` for ``ttl_s`` seconds (a checkout, a quote), routed like an order.

    Idempotent by ``hold_id`` too: placing a hold that is still held with the same quantities
    changes nothing. All lines or none, unless ``partial`` (then what can be served is held).
    """

    hold_id: Ref
    channel: Ref
    lines: Annotated[list[EventLine], msgspec.Meta(min_length=1, max_length=500)]
    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=HOLD_MAX_TTL_S)]
    ship_to: ShipTo | None = None
    partial: bool = False


class HoldReleased(_Base, frozen=True, tag="hold.released"):
    """Give a hold's units back now (an abandoned checkout, a declined quote).

    ``channel`` is optional (an MQTT topic fills it in); when given it must be the hold's.
    """

    hold_id: Ref
    channel: Ref | None = None


Event = (
    OrderCreated
    | OrderCancelled
    | OrderFulfilled
    | OrderReturned
    | StockAdjusted
    | StockCounted
    | HoldPlaced
    | HoldReleased
)

_one = msgspec.json.Decoder(Event)
_many = msgspec.json.Decoder(Event | list[Event])
_encoder = msgspec.json.Encoder()


class BadEvent(ValueError):
    """Malformed event input; the message names the path (``$[2].lines[0].qty``)."""


_TOO_DEEP = "JSON nested too deeply"


def parse_json(body: bytes) -> Any:
    """Untyped JSON (a webhook's or an MQTT message's body, before it is typed): BadEvent for
    malformed or too deeply nested JSON, never another error. msgspec's generic decoder
    recurses once per level and gives up with RecursionError near Python's limit: a body of
    100,000 ``[`` must be a 400, not a 500."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadEvent(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise BadEvent(_TOO_DEEP) from None


def decode_events(body: bytes) -> list[Event]:
    """One event object or a list of them, validated; raises BadEvent naming what is wrong."""
    try:
        decoded = _many.decode(body)
    except msgspec.ValidationError as exc:
        raise BadEvent(_in_words(str(exc))) from exc
    except msgspec.DecodeError as exc:
        raise BadEvent(f"malformed JSON: {exc}") from exc
    except RecursionError:
        # A deep value where none is expected (skipped inside an object): still a 400.
        raise BadEvent(_TOO_DEEP) from None
    events = decoded if isinstance(decoded, list) else [decoded]
    if not events:
        raise BadEvent("no events: send one event object or a non-empty list")
    check_events(events)
    return events


def check_events(events: list[Event]) -> None:
    """The rules between an event's fields that its type cannot state (BadEvent naming
    ``$[i]``): at most MAX_EVENTS, a count that counts something."""
    if len(events) > MAX_EVENTS:
        raise BadEvent(f"too many events in one request: {len(events)} (at most {MAX_EVENTS})")
    for i, event in enumerate(events):
        if isinstance(event, StockCounted) and all(
            v is None for v in (event.on_hand, event.safety_stock, event.damaged, event.incoming)
        ):
            raise BadEvent(f"$[{i}]: stock.counted needs on_hand or another state to count")


def convert_events(objects: list[dict[str, object]]) -> list[Event]:
    """Events from already parsed JSON objects (webhook adapters translate into these), held
    to the same rules as ``decode_events``."""
    events: list[Event] = []
    for i, obj in enumerate(objects):
        try:
            events.append(msgspec.convert(obj, Event))
        except msgspec.ValidationError as exc:
            raise BadEvent(f"$[{i}]: {_in_words(str(exc))}") from exc
        except RecursionError:
            raise BadEvent(f"$[{i}]: {_TOO_DEEP}") from None
    check_events(events)
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
    if isinstance(event, HoldReleased):
        return []
    return [line.sku for line in event.lines or ()]


def event_order_key(event: Event) -> str | None:
    """``channel/order_id`` for order events, ``hold/<hold_id>`` for hold events, else None."""
    if isinstance(event, StockAdjusted | StockCounted):
        return None
    if isinstance(event, HoldPlaced | HoldReleased):
        return f"hold/{event.hold_id}"
    return f"{event.channel}/{event.order_id}"


def event_hold_key(event: Event) -> str | None:
    """``hold/<hold_id>`` of an order that converts a hold (it must follow the hold's events
    in stream order), else None."""
    if isinstance(event, OrderCreated) and event.hold_id is not None:
        return f"hold/{event.hold_id}"
    return None
