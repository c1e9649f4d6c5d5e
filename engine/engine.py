"""The inventory engine: every stock change is one atomic, idempotent Lua script call.

``Engine`` turns typed calls into the scripts of ``lua/`` and their replies into ``Outcome``s
(the new state of every SKU touched, the order if any). It validates what it can before a round
trip, but the scripts check everything again: they are the last line, and they run atomically.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core.errors import InvalidQuantity, InvalidRequest, InvsyncError, StoreUnavailable, from_code
from . import history as hist
from . import keys as k
from .availability import Bundle, LocationStock, expand_bundles, location_available
from .availability import OrderLine as PlanLine
from .models import Line, LocationState, Order, Outcome, SkuState
from .scripts import Scripts

DAY_S = 86_400


class _Reply(msgspec.Struct):
    skus: dict[str, list[str] | dict[str, str]] = {}
    order: Order | None = None


class _Error(msgspec.Struct):
    code: str
    message: str


_reply_decoder = msgspec.json.Decoder(_Reply)


def _text(value: object) -> str:
    """A reply item as text (redis-py types its replies loosely: bytes, str or Any)."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


_json = msgspec.json.Encoder()


def _positive(value: object, field: str) -> int:
    if type(value) is not int or not 1 <= value <= k.MAX_QTY:
        raise InvalidQuantity(
            f"{field} must be an integer from 1 to {k.MAX_QTY}, got {value!r}", field=field
        )
    return value


def _check_lines(lines: Sequence[Line], *, need_location: bool) -> None:
    if not lines:
        raise InvalidRequest("an order needs at least one line", field="lines")
    for i, line in enumerate(lines):
        k.check_sku(line.sku)
        _positive(line.qty, f"lines[{i}].qty")
        if need_location:
            if line.location is None:
                raise InvalidRequest(f"lines[{i}].location is required", field="lines")
            k.check_id(line.location, "location")


class Engine:
    """Atomic stock operations on one Redis/Valkey database.

    Use as an async context manager (it loads the scripts and owns their sender). ``clock``
    returns seconds since the epoch and is the only time source (tests inject their own).
    ``safety_stock`` gives each location's default safety stock, used where a SKU has none set.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        idempotency_ttl_s: int = 3 * DAY_S,
        bundles: Mapping[str, Bundle] | None = None,
        safety_stock: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        max_batch: int = 512,
        op_timeout: float = 5.0,
    ) -> None:
        if idempotency_ttl_s < 1:
            raise ValueError("idempotency_ttl_s must be at least 1 second")
        self.redis = redis
        self.scripts = Scripts(redis, max_batch=max_batch, op_timeout=op_timeout)
        self.bundles = dict(bundles or {})
        self.safety_stock = dict(safety_stock or {})
        self._ttl_ms = str(idempotency_ttl_s * 1000)
        self._clock = clock

    async def __aenter__(self) -> Engine:
        await self.scripts.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.scripts.__aexit__(*exc)

    # -- stock ------------------------------------------------------------------------------

    async def count(
        self,
        event_id: str,
        sku: str,
        location: str,
        qty: int,
        *,
        state: str = "on_hand",
        reason: str = "count",
    ) -> Outcome:
        """Set ``state`` (on_hand, safety_stock, damaged, incoming) of ``sku`` at ``location``."""
        k.check_event_id(event_id)
        k.check_sku(sku)
        k.check_id(location, "location")
        if type(qty) is not int or not 0 <= qty <= k.MAX_QTY:
            raise InvalidQuantity(
                f"{state} must be an integer from 0 to {k.MAX_QTY}, got {qty!r}", field=state
            )
        args = {
            "skus": [sku],
            "sku": sku,
            "location": location,
            "qty": qty,
            "state": state,
            "reason": reason,
            "event_id": event_id,
            "history_cap": hist.CAP,
        }
        return await self._run(
            "stock.count", [k.sku_event(sku, event_id), k.history(sku), k.inventory(sku)], args
        )

    async def adjust(
        self, event_id: str, sku: str, location: str, delta: int, *, reason: str = "adjustment"
    ) -> Outcome:
        """Change on_hand of ``sku`` at ``location`` by ``delta`` (non-zero), with a reason."""
        k.check_event_id(event_id)
        k.check_sku(sku)
        k.check_id(location, "location")
        if type(delta) is not int or delta == 0 or abs(delta) > k.MAX_QTY:
            raise InvalidQuantity(
                f"delta must be a non-zero integer within ±{k.MAX_QTY}, got {delta!r}",
                field="delta",
            )
        args = {
            "skus": [sku],
            "sku": sku,
            "location": location,
            "delta": delta,
            "reason": reason,
            "event_id": event_id,
            "history_cap": hist.CAP,
        }
        return await self._run(
            "stock.adjust", [k.sku_event(sku, event_id), k.history(sku), k.inventory(sku)], args
        )

    # -- orders -----------------------------------------------------------------------------

    def expand(self, lines: Sequence[Line]) -> list[Line]:
        """Bundle lines replaced by their components, and lines on the same unit merged."""
        if len(lines) == 1 and lines[0].sku not in self.bundles:
            return list(lines)  # the common case: nothing to expand or merge
        try:
            planned = expand_bundles(
                [PlanLine(sku=x.sku, qty=x.qty, location=x.location) for x in lines], self.bundles
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc), field="lines") from exc
        return [Line(sku=x.sku, qty=x.qty, location=x.location) for x in planned]

    async def reserve(
        self,
        event_id: str,
        channel: str,
        order_id: str,
        lines: Sequence[Line],
        *,
        hold_id: str | None = None,
    ) -> Outcome:
        """Reserve every line at its location, all or none (bundles reserve their components).

        With ``hold_id``, an active hold's units are converted into this order atomically.
        Raises OutOfStock (nothing reserved) when any line cannot be met.
        """
        k.check_event_id(event_id)
        k.check_id(channel, "channel")
        k.check_id(order_id, "order_id")
        _check_lines(lines, need_location=True)
        expanded = self.expand(lines)
        skus = list(dict.fromkeys(x.sku for x in expanded))
        key_list = [k.order_event(channel, order_id, event_id), k.order(channel, order_id)]
        args: dict[str, Any] = {
            "channel": channel,
            "order_id": order_id,
            "lines": [{"sku": x.sku, "location": x.location, "qty": x.qty} for x in expanded],
        }
        if list(lines) != expanded:
            # Keep what was ordered (bundles) next to what was reserved (components).
            args["requested"] = [
                {"sku": x.sku, "location": x.location, "qty": x.qty} for x in lines
            ]
        if hold_id is not None:
            k.check_id(hold_id, "hold_id")
            held = await self.hold(hold_id)
            if held is not None:
                skus.extend(x.sku for x in held.lines if x.sku not in skus)
            key_list += [k.hold(hold_id), k.HOLDS_EXPIRY]
            args["hold"] = hold_id
        args["skus"] = skus
        return await self._run("order.reserve", key_list + [k.inventory(s) for s in skus], args)

    async def release(
        self,
        event_id: str,
        channel: str,
        order_id: str,
        lines: Sequence[Line] | None = None,
        *,
        reason: str = "cancelled",
    ) -> Outcome:
        """Cancel the whole order (``lines`` None) or some units; only reserved units are freed."""
        return await self._order_op(
            "order.release", event_id, channel, order_id, lines, {"reason": reason}
        )

    async def fulfil(
        self, event_id: str, channel: str, order_id: str, lines: Sequence[Line] | None = None
    ) -> Outcome:
        """Ship the whole order (``lines`` None) or some units: on_hand and reserved both drop."""
        return await self._order_op("order.fulfil", event_id, channel, order_id, lines, {})

    async def return_(
        self,
        event_id: str,
        channel: str,
        order_id: str,
        location: str,
        lines: Sequence[Line] | None = None,
    ) -> Outcome:
        """Restock returned units at ``location`` (any location, not only where they shipped)."""
        k.check_id(location, "location")
        return await self._order_op(
            "order.return", event_id, channel, order_id, lines, {"location": location}
        )

    async def _order_op(
        self,
        script: str,
        event_id: str,
        channel: str,
        order_id: str,
        lines: Sequence[Line] | None,
        extra: dict[str, Any],
    ) -> Outcome:
        k.check_event_id(event_id)
        k.check_id(channel, "channel")
        k.check_id(order_id, "order_id")
        args: dict[str, Any] = {"order_id": order_id, **extra}
        if lines is None:
            # The script needs the keys of the order's SKUs; lines never change after the
            # reservation, so reading them first cannot race with anything that matters.
            current = await self.order(channel, order_id)
            skus = list(dict.fromkeys(x.sku for x in current.lines)) if current else []
        else:
            _check_lines(lines, need_location=False)
            expanded = self.expand(lines)
            # A line naming its location (a warehouse's shipment) takes from that location only.
            args["lines"] = [
                {"sku": x.sku, "qty": x.qty, **({"location": x.location} if x.location else {})}
                for x in expanded
            ]
            skus = list(dict.fromkeys(x.sku for x in expanded))
        args["skus"] = skus
        key_list = [k.order_event(channel, order_id, event_id), k.order(channel, order_id)]
        return await self._run(script, key_list + [k.inventory(s) for s in skus], args)

    # -- holds ------------------------------------------------------------------------------

    async def place_hold(
        self,
        event_id: str,
        hold_id: str,
        lines: Sequence[Line],
        ttl_s: float,
        *,
        channel: str = "checkout",
    ) -> Outcome:
        """Reserve ``lines`` for ``ttl_s`` seconds (a checkout, a quote); lapses on its own."""
        k.check_event_id(event_id)
        k.check_id(hold_id, "hold_id")
        k.check_id(channel, "channel")
        _check_lines(lines, need_location=True)
        ttl_ms = int(ttl_s * 1000)
        if ttl_ms < 1:
            raise InvalidQuantity(f"ttl must be positive, got {ttl_s!r}", field="ttl")
        expanded = self.expand(lines)
        skus = list(dict.fromkeys(x.sku for x in expanded))
        args = {
            "skus": skus,
            "channel": channel,
            "order_id": hold_id,
            "ttl_ms": ttl_ms,
            "lines": [{"sku": x.sku, "location": x.location, "qty": x.qty} for x in expanded],
        }
        key_list = [k.hold_event(hold_id, event_id), k.hold(hold_id), k.HOLDS_EXPIRY]
        return await self._run("hold.place", key_list + [k.inventory(s) for s in skus], args)

    async def release_hold(
        self, event_id: str, hold_id: str, *, reason: str = "released"
    ) -> Outcome:
        """Release a hold now (``reason`` "released") or because it lapsed ("expired")."""
        k.check_event_id(event_id)
        k.check_id(hold_id, "hold_id")
        current = await self.hold(hold_id)
        skus = list(dict.fromkeys(x.sku for x in current.lines)) if current else []
        args = {"skus": skus, "order_id": hold_id, "kind": "hold", "reason": reason}
        key_list = [k.hold_event(hold_id, event_id), k.hold(hold_id), k.HOLDS_EXPIRY]
        return await self._run("hold.release", key_list + [k.inventory(s) for s in skus], args)

    async def expire_holds(self, *, limit: int = 500) -> list[Outcome]:
        """Release every hold whose time has passed (at most ``limit`` per call)."""
        now_ms = self._now_ms()
        try:
            due = await self.redis.zrangebyscore(k.HOLDS_EXPIRY, "-inf", now_ms, 0, limit)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        outcomes = []
        for raw_key in due:
            key = _text(raw_key)
            hold_id = k.tag_of(key).removeprefix("hold/")
            try:
                outcomes.append(
                    await self.release_hold(f"expire-{hold_id}", hold_id, reason="expired")
                )
            except InvsyncError as exc:
                if exc.code in ("NOTHING_RESERVED", "UNKNOWN_HOLD"):
                    # Converted or released meanwhile, or a stale index entry: drop it.
                    try:
                        await self.redis.zrem(k.HOLDS_EXPIRY, key)
                    except (RedisConnectionError, RedisTimeoutError) as err:
                        raise StoreUnavailable(f"Redis is unavailable: {err}") from err
                elif exc.code != "NOT_EXPIRED":
                    raise
        return outcomes

    # -- reads ------------------------------------------------------------------------------

    async def stock(self, sku: str) -> SkuState | None:
        """The current state of ``sku``, or None if it was never stocked."""
        k.check_sku(sku)
        try:
            raw = await self.redis.hgetall(k.inventory(sku))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        if not raw:
            return None
        return self.sku_state(sku, {_text(a): _text(b) for a, b in raw.items()})

    async def stocks(self, skus: Sequence[str], *, chunk: int = 500) -> dict[str, SkuState]:
        """The current state of every stocked SKU of ``skus`` (pipelined, ``chunk`` per trip);
        SKUs never stocked are absent."""
        out: dict[str, SkuState] = {}
        for start in range(0, len(skus), chunk):
            part = skus[start : start + chunk]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for sku in part:
                        pipe.hgetall(k.inventory(sku))
                    rows = await pipe.execute()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
            for sku, raw in zip(part, rows, strict=True):
                if raw:
                    out[sku] = self.sku_state(sku, {_text(a): _text(b) for a, b in raw.items()})
        return out

    async def order(self, channel: str, order_id: str) -> Order | None:
        """The record of an order, or None."""
        return await self._doc(k.order(channel, order_id))

    async def hold(self, hold_id: str) -> Order | None:
        """The record of a hold, or None."""
        return await self._doc(k.hold(hold_id))

    async def history(self, sku: str, *, count: int = 20) -> list[dict[str, str]]:
        """The latest operator movements (counts, adjustments) of ``sku``, newest first, at
        most ``history.CAP``: each ``{"id", "event", "op", "location", "state", "from",
        "to", "reason", "ts"}`` (strings). Reads the capped list the scripts keep
        (``record_history`` in engine/lua/_lib.lua), or the stream an older version left
        (converted by the SKU's next count or adjustment)."""
        if count < 1:
            return []
        key = k.history(sku)
        try:
            try:
                raw = await self.redis.lrange(key, 0, count - 1)
            except ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                rows = await self.redis.xrevrange(key, count=count)
                return [
                    {"id": _text(rid), **{_text(a): _text(b) for a, b in (fields or {}).items()}}
                    for rid, fields in rows or []
                ]
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        return [hist.decode(item) for item in raw]

    async def skus(self, *, batch: int = 1000) -> AsyncIterator[str]:
        """Every stocked SKU (SCAN; works on a live server without blocking it)."""
        try:
            async for key in self.redis.scan_iter(match=k.INVENTORY_PATTERN, count=batch):
                yield k.sku_of_inventory_key(key)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc

    def sku_state(self, sku: str, fields: Mapping[str, str] | Iterable[str]) -> SkuState:
        """Build a SkuState from the fields of ``inv:{sku}`` (a mapping or a flat list)."""
        if isinstance(fields, Mapping):
            items: Iterable[tuple[str, str]] = fields.items()
        else:
            flat = list(fields)
            items = zip(flat[::2], flat[1::2], strict=True)
        version = 0
        counters: dict[str, dict[str, int]] = {}
        for name, value in items:
            if name == "v":
                version = int(value)
                continue
            location, _, state = name.rpartition(":")
            counters.setdefault(location, {})[state] = int(value)
        locations: dict[str, LocationState] = {}
        for location, c in counters.items():
            stock = LocationStock(
                on_hand=c.get("on_hand", 0),
                reserved=c.get("reserved", 0),
                safety_stock=c.get("safety_stock", self.safety_stock.get(location, 0)),
                damaged=c.get("damaged", 0),
                incoming=c.get("incoming", 0),
            )
            locations[location] = LocationState(
                on_hand=stock.on_hand,
                reserved=stock.reserved,
                safety_stock=stock.safety_stock,
                damaged=stock.damaged,
                incoming=stock.incoming,
                available=location_available(stock),
            )
        return SkuState(sku=sku, version=version, locations=locations)

    # -- plumbing ---------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _doc(self, key: str) -> Order | None:
        try:
            raw = await self.redis.hget(key, "doc")
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        return None if raw is None else msgspec.json.decode(raw, type=Order)

    async def _run(self, script: str, key_list: list[str], args: Mapping[str, Any]) -> Outcome:
        reply = await self.scripts.call(
            script, key_list, [_json.encode(args), self._ttl_ms, self._now_ms()]
        )
        status, payload = reply[0], reply[1]
        if status == b"err":
            err = msgspec.json.decode(payload)
            code, message = err.pop("code"), err.pop("message")
            raise from_code(code, message, **err)
        decoded = _reply_decoder.decode(payload)
        return Outcome(
            duplicate=status == b"dup",
            skus={sku: self.sku_state(sku, fields) for sku, fields in decoded.skus.items()},
            order=decoded.order,
        )
