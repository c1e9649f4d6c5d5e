"""The fulfillment outbox: what each location has been asked to ship, and what is still to tell it.

An order's record says where its units are reserved. For every location with a ``fulfillment``
config, the *part* of the order at that location is the units reserved or already shipped there
(released units are not part of it). ``sync_order`` compares that with what the location was last
told (``ful:{<channel>/<order id>}``, one hash field per location) and, in one MULTI/EXEC, appends
the messages that close the gap to the location's outbox stream and records the new part:

- units added to a location's part: ``fulfillment.requested`` with those lines;
- units withdrawn (a cancellation, a re-route away, a partial cancel): ``fulfillment.cancelled``
  with the withdrawn lines and what ``remaining`` of the part the location keeps.

The engine's order record is the only input, so a message is never written for units that were
not reserved, and calling ``sync_order`` again (after a crash, for a re-delivered event) writes
nothing new: the outbox gets each change once. The sender (``daemon/fulfillment.py``) reads the
outbox in order and records each part's handoff state here (``mark``).

Keys (docs/keys.md): ``ful:{<channel>/<order id>}`` hash, location -> JSON part;
``fulfillment:outbox:{<location>}`` stream of messages; ``fulfillment:refs`` hash, short
reference -> part (X12 documents carry at most 22 characters of order number);
``fulfillment:ref_seq`` the counter behind the references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec
import redis.asyncio as aioredis

from ..core.errors import StoreUnavailable
from ..core.fulfillment_messages import Message, MessageLine
from .keys import order_tag
from .models import Order

__all__ = [
    "HandoffState",
    "Part",
    "mark",
    "message_lines",
    "outbox_key",
    "parts_key",
    "read_parts",
    "ref_part",
    "requeue",
    "sync_order",
]

HandoffState = Literal["queued", "sent", "acknowledged", "refused", "cancelling", "cancelled"]
REFS = "fulfillment:refs"
REF_SEQ = "fulfillment:ref_seq"
#: Outbox entries kept at most per location (delivered ones are deleted as they are acknowledged).
OUTBOX_MAXLEN = 1_000_000


class Part(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one location was told of one order, and how far the telling went."""

    location: str
    ref: str
    lines: dict[str, int]
    seq: int
    state: HandoffState
    message_id: str
    updated_ms: int
    ship_to: dict[str, Any] | None = None
    sla_days: int | None = None
    late: bool = False
    requested_ms: int | None = None
    acked_ms: int | None = None
    error: str | None = None


def parts_key(channel: str, order_id: str) -> str:
    """The hash of an order's parts (shares the order record's hash tag)."""
    return f"ful:{{{order_tag(channel, order_id)}}}"


def outbox_key(location: str) -> str:
    """The stream of messages still to deliver to ``location``, in order."""
    return f"fulfillment:outbox:{{{location}}}"


def _wanted(order: Order, location: str) -> dict[str, int]:
    """SKU -> the units of the order the location ships: reserved or already shipped there."""
    out: dict[str, int] = {}
    if order.kind != "order":
        return out
    for line in order.lines:
        if line.location != location:
            continue
        qty = line.reserved + line.fulfilled
        if qty > 0:
            out[line.sku] = out.get(line.sku, 0) + qty
    return out


def message_lines(lines: Mapping[str, int]) -> list[MessageLine]:
    """Lines in SKU order (a stable document for the same part)."""
    return [MessageLine(sku=sku, qty=qty) for sku, qty in sorted(lines.items()) if qty > 0]


def _decode_part(raw: bytes | str) -> Part:
    return msgspec.json.decode(raw, type=Part)


async def read_parts(redis: aioredis.Redis, channel: str, order_id: str) -> dict[str, Part]:
    """Location -> part of one order (empty when no location was ever told of it)."""
    raw = await redis.hgetall(parts_key(channel, order_id))
    return {
        (k.decode() if isinstance(k, bytes) else k): _decode_part(v) for k, v in raw.items()
    }


async def ref_part(redis: aioredis.Redis, ref: str) -> tuple[str, str, str] | None:
    """A part's reference -> (channel, order id, location), or None when unknown."""
    raw = await redis.hget(REFS, ref)
    if raw is None:
        return None
    doc = msgspec.json.decode(raw)
    return doc["channel"], doc["order_id"], doc["location"]


async def _new_ref(redis: aioredis.Redis, channel: str, order_id: str, location: str) -> str:
    number = int(await redis.incr(REF_SEQ))
    ref = f"IS{number:08d}"
    await redis.hset(
        REFS, ref,
        msgspec.json.encode({"channel": channel, "order_id": order_id, "location": location}),
    )
    return ref


async def sync_order(
    redis: aioredis.Redis,
    order: Order,
    locations: Mapping[str, bool],
    *,
    now_ms: int,
    ship_to: dict[str, Any] | None = None,
    sla_days: int | None = None,
    late: bool = False,
) -> list[Message]:
    """Queue what the order's locations must be told now; returns the messages queued.

    ``locations`` names the locations that take handoffs (location id -> True). The caller
    serialises calls per order (the daemon holds a lock per order). ``ship_to``, ``sla_days``
    and ``late`` describe the order when it is first requested at a location; later messages
    repeat what the part recorded.
    """
    try:
        parts = await read_parts(redis, order.channel, order.order_id)
        candidates = {line.location for line in order.lines} | set(parts)
        messages: list[Message] = []
        updates: dict[str, Part] = {}
        for location in sorted(candidates):
            if not locations.get(location):
                continue
            want = _wanted(order, location)
            part = parts.get(location)
            have = dict(part.lines) if part is not None else {}
            if want == have:
                continue
            added = {s: q - have.get(s, 0) for s, q in want.items() if q > have.get(s, 0)}
            withdrawn = {s: q - want.get(s, 0) for s, q in have.items() if q > want.get(s, 0)}
            if part is None:
                part = Part(
                    location=location,
                    ref=await _new_ref(redis, order.channel, order.order_id, location),
                    lines={},
                    seq=0,
                    state="queued",
                    message_id="",
                    updated_ms=now_ms,
                    ship_to=ship_to,
                    sla_days=sla_days,
                    late=late,
                    requested_ms=now_ms,
                )
            for kind, lines in (
                ("fulfillment.cancelled", withdrawn),
                ("fulfillment.requested", added),
            ):
                if not lines:
                    continue
                part.seq += 1
                message = Message(
                    type=kind,  # type: ignore[arg-type]
                    id=f"{order.channel}/{order.order_id}/{location}/{part.seq}",
                    order_id=order.order_id,
                    channel=order.channel,
                    location=location,
                    lines=message_lines(lines),
                    ship_to=part.ship_to,
                    sla_days=part.sla_days,
                    late=part.late,
                    ref=part.ref,
                    seq=part.seq,
                    remaining=message_lines(want) if kind == "fulfillment.cancelled" else None,
                    created_ms=now_ms,
                )
                messages.append(message)
                part.message_id = message.id
                part.state = "cancelling" if not want else "queued"
            part.lines = want
            part.updated_ms = now_ms
            part.error = None
            updates[location] = part
        if not messages:
            return []
        async with redis.pipeline(transaction=True) as pipe:
            key = parts_key(order.channel, order.order_id)
            for location, part in updates.items():
                pipe.hset(key, location, msgspec.json.encode(part))
            for message in messages:
                pipe.xadd(
                    outbox_key(message.location),
                    {"msg": msgspec.json.encode(message)},
                    maxlen=OUTBOX_MAXLEN,
                    approximate=True,
                )
            await pipe.execute()
        return messages
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise StoreUnavailable(f"fulfillment outbox: {exc}") from exc


async def mark(
    redis: aioredis.Redis,
    message: Message,
    state: HandoffState,
    *,
    now_ms: int,
    error: str | None = None,
) -> Part | None:
    """Record how the delivery of ``message`` went on its part, unless a later message of the
    same part superseded it (then the part is left as it is). Returns the part as stored."""
    key = parts_key(message.channel, message.order_id)
    raw = await redis.hget(key, message.location)
    if raw is None:
        return None
    part = _decode_part(raw)
    if part.seq != message.seq:
        return part
    if state == "acknowledged" and message.type == "fulfillment.cancelled":
        state = "cancelled" if not part.lines else "acknowledged"
    part.state = state
    part.updated_ms = now_ms
    part.error = error
    if state in ("acknowledged", "cancelled"):
        part.acked_ms = now_ms
    await redis.hset(key, message.location, msgspec.json.encode(part))
    return part


async def requeue(
    redis: aioredis.Redis, channel: str, order_id: str, part: Part, *, now_ms: int
) -> Message:
    """Queue the part's whole current request again (an operator's resend after a refusal)."""
    part.seq += 1
    message = Message(
        type="fulfillment.requested",
        id=f"{channel}/{order_id}/{part.location}/{part.seq}",
        order_id=order_id,
        channel=channel,
        location=part.location,
        lines=message_lines(part.lines),
        ship_to=part.ship_to,
        sla_days=part.sla_days,
        late=part.late,
        ref=part.ref,
        seq=part.seq,
        created_ms=now_ms,
    )
    part.message_id, part.state, part.updated_ms, part.error = message.id, "queued", now_ms, None
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(parts_key(channel, order_id), part.location, msgspec.json.encode(part))
        pipe.xadd(outbox_key(part.location), {"msg": msgspec.json.encode(message)},
                  maxlen=OUTBOX_MAXLEN, approximate=True)
        await pipe.execute()
    return message
