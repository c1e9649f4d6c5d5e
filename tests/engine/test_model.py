"""The engine against a plain-Python model of its rules, over random sequences of operations.

A hypothesis state machine sends the same random calls (counts, adjustments, multi-line and
bundle reservations, whole and partial releases, fulfilments and returns, holds that lapse on a
fake clock, conversions, replays of earlier event ids) to the real engine and to ``Model``, and
after every step compares the outcome (ok, duplicate or which error) and the whole state: every
counter of every SKU and location, versions, every order and hold record, the expiry index.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from invsync.core.errors import InvsyncError
from invsync.engine import keys as k
from invsync.engine.availability import Bundle
from invsync.engine.engine import Engine
from invsync.engine.models import Line, LocationState, Order, Outcome, SkuState

SKUS = ("A", "B", "C")
KIT = Bundle(sku="KIT", components={"A": 1, "B": 2})
BUNDLES = {"KIT": KIT}
LOCATIONS = ("L1", "L2", "L3")
STATES = ("on_hand", "reserved", "safety_stock", "damaged", "incoming")
ORDER_IDS = ("o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8")
HOLD_IDS = ("h1", "h2", "h3", "h4", "h5", "h6")
WEB = "web"

#: Set by the test from the ``redis_url`` fixture before the machine runs.
URL: str | None = None


# --- the model --------------------------------------------------------------------------------


class Refused(Exception):
    """The model refuses a call with an error code, changing nothing."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class MLine:
    sku: str
    location: str
    qty: int
    reserved: int
    fulfilled: int = 0
    released: int = 0
    returned: int = 0


@dataclass
class MDoc:
    kind: str
    state: str
    lines: list[MLine]
    expires_ms: int | None = None
    converted_to: str | None = None


RawLine = tuple[str, int, str | None]  # sku, qty, location


def expand(lines: list[RawLine]) -> list[tuple[str, str | None, int]]:
    """Bundles replaced by their components, lines on the same (sku, location) summed."""
    merged: dict[tuple[str, str | None], int] = {}
    for sku, qty, location in lines:
        bundle = BUNDLES.get(sku)
        parts = [(c, qty * u) for c, u in bundle.components.items()] if bundle else [(sku, qty)]
        for part, q in parts:
            merged[part, location] = merged.get((part, location), 0) + q
    return [(sku, location, q) for (sku, location), q in merged.items()]


def _per_sku(units: list[tuple[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for sku, q in units:
        totals[sku] = totals.get(sku, 0) + q
    return totals


def order_state(doc: MDoc) -> str:
    r = sum(x.reserved for x in doc.lines)
    f = sum(x.fulfilled for x in doc.lines)
    ret = sum(x.returned for x in doc.lines)
    if r > 0:
        return "partially_fulfilled" if f > 0 else "reserved"
    if f == 0:
        return "cancelled"
    return "returned" if ret >= f else "fulfilled"


@dataclass
class Model:
    """The engine's rules in plain Python: the oracle every step is checked against."""

    counters: defaultdict[tuple[str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    versions: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    orders: dict[str, MDoc] = field(default_factory=dict)
    holds: dict[str, MDoc] = field(default_factory=dict)
    markers: set[tuple[str, str, str]] = field(default_factory=set)
    now_ms: int = 0

    def free(self, sku: str, location: str) -> int:
        c = self.counters
        return (
            c[sku, location, "on_hand"] - c[sku, location, "reserved"] - c[sku, location, "damaged"]
        )

    def _bump(self, touched: set[str]) -> None:
        for sku in touched:
            self.versions[sku] += 1

    # stock

    def count(self, event: str, sku: str, location: str, qty: int, state: str) -> str:
        if ("sku", sku, event) in self.markers:
            return "dup"
        if state == "on_hand" and qty < self.counters[sku, location, "reserved"]:
            raise Refused("BELOW_RESERVED")
        self.counters[sku, location, state] = qty
        self._bump({sku})
        self.markers.add(("sku", sku, event))
        return "ok"

    def adjust(self, event: str, sku: str, location: str, delta: int) -> str:
        if ("sku", sku, event) in self.markers:
            return "dup"
        after = self.counters[sku, location, "on_hand"] + delta
        if after < 0:
            raise Refused("NEGATIVE_STOCK")
        if after < self.counters[sku, location, "reserved"]:
            raise Refused("BELOW_RESERVED")
        self.counters[sku, location, "on_hand"] = after
        self._bump({sku})
        self.markers.add(("sku", sku, event))
        return "ok"

    # reservations

    def reserve(
        self,
        kind: str,
        event: str,
        record_id: str,
        lines: list[RawLine],
        *,
        hold_id: str | None = None,
        ttl_ms: int = 0,
    ) -> str:
        scope, records = ("ord", self.orders) if kind == "order" else ("hold", self.holds)
        if (scope, record_id, event) in self.markers:
            return "dup"
        if record_id in records:
            if kind == "order":
                raise Refused("ORDER_EXISTS")
            held = records[record_id]
            if held.state == "held" and _per_sku(
                [(x.sku, x.qty) for x in held.lines]
            ) == _per_sku([(sku, q) for sku, _, q in expand(lines)]):
                self.markers.add((scope, record_id, event))
                return "dup"  # the same hold placed again: idempotent by hold id
            raise Refused("HOLD_EXISTS")
        need = expand(lines)
        credit: defaultdict[tuple[str, str], int] = defaultdict(int)
        hold = self.holds.get(hold_id) if hold_id is not None else None
        if hold is not None and hold.state != "held":
            hold = None
        for x in hold.lines if hold else []:
            credit[x.sku, x.location] += x.reserved
        for sku, location, q in need:
            assert location is not None
            if q > self.free(sku, location) + credit[sku, location]:
                raise Refused("INSUFFICIENT_STOCK")
        touched: set[str] = set()
        if hold is not None:
            for x in hold.lines:
                self.counters[x.sku, x.location, "reserved"] -= x.reserved
                x.released += x.reserved
                x.reserved = 0
                touched.add(x.sku)
            hold.state = "converted"
            hold.converted_to = f"{WEB}/{record_id}"
        doc_lines = []
        for sku, location, q in need:
            assert location is not None
            self.counters[sku, location, "reserved"] += q
            touched.add(sku)
            doc_lines.append(MLine(sku, location, q, reserved=q))
        self._bump(touched)
        doc = MDoc(kind, "reserved" if kind == "order" else "held", doc_lines)
        if kind == "hold":
            doc.expires_ms = self.now_ms + ttl_ms
        records[record_id] = doc
        self.markers.add((scope, record_id, event))
        return "ok"

    def _plan(
        self, doc: MDoc, returning: bool, requests: list[tuple[str, str | None, int]] | None
    ) -> list[tuple[MLine, int]]:
        def left(x: MLine) -> int:
            return x.fulfilled - x.returned if returning else x.reserved

        if requests is None:
            takes = [(x, left(x)) for x in doc.lines if left(x) > 0]
            if not takes:
                raise Refused("EXCEEDS_FULFILLED" if returning else "NOTHING_RESERVED")
            return takes
        takes, used = [], defaultdict(int)
        for sku, _, want in requests:
            remaining = want
            for j, x in enumerate(doc.lines):
                if x.sku == sku and remaining > 0:
                    q = min(left(x) - used[j], remaining)
                    if q > 0:
                        used[j] += q
                        takes.append((x, q))
                        remaining -= q
            if remaining > 0:
                raise Refused("EXCEEDS_FULFILLED" if returning else "EXCEEDS_RESERVED")
        return takes

    def order_op(
        self,
        op: str,
        event: str,
        order_id: str,
        lines: list[RawLine] | None,
        location: str | None = None,
    ) -> str:
        if ("ord", order_id, event) in self.markers:
            return "dup"
        doc = self.orders.get(order_id)
        if doc is None:
            raise Refused("UNKNOWN_ORDER")
        requests = None if lines is None else expand(lines)
        takes = self._plan(doc, op == "return", requests)
        touched = set()
        for x, q in takes:
            touched.add(x.sku)
            if op == "release":
                self.counters[x.sku, x.location, "reserved"] -= q
                x.reserved -= q
                x.released += q
            elif op == "fulfil":
                self.counters[x.sku, x.location, "reserved"] -= q
                self.counters[x.sku, x.location, "on_hand"] -= q
                x.reserved -= q
                x.fulfilled += q
            else:
                assert location is not None
                self.counters[x.sku, location, "on_hand"] += q
                x.returned += q
        self._bump(touched)
        doc.state = order_state(doc)
        self.markers.add(("ord", order_id, event))
        return "ok"

    def release_hold(self, event: str, hold_id: str, reason: str = "released") -> str:
        if ("hold", hold_id, event) in self.markers:
            return "dup"
        doc = self.holds.get(hold_id)
        if doc is None:
            raise Refused("UNKNOWN_HOLD")
        if doc.state != "held":
            raise Refused("NOTHING_RESERVED")
        assert doc.expires_ms is not None
        if reason == "expired" and doc.expires_ms > self.now_ms:
            raise Refused("NOT_EXPIRED")
        for x in doc.lines:
            self.counters[x.sku, x.location, "reserved"] -= x.reserved
            x.released += x.reserved
            x.reserved = 0
        self._bump({x.sku for x in doc.lines})
        doc.state = "expired" if reason == "expired" else "released"
        self.markers.add(("hold", hold_id, event))
        return "ok"

    def expire_holds(self) -> set[str]:
        due = [
            hold_id
            for hold_id, doc in self.holds.items()
            if doc.state == "held" and doc.expires_ms is not None and doc.expires_ms <= self.now_ms
        ]
        for hold_id in due:
            self.release_hold(f"expire-{hold_id}", hold_id, reason="expired")
        return set(due)

    # the view compared with the engine's

    def stock_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {}
        for sku in (*SKUS, "KIT"):
            if self.versions[sku] == 0:
                view[sku] = None
                continue
            view[sku] = (
                self.versions[sku],
                {loc: tuple(self.counters[sku, loc, s] for s in STATES) for loc in LOCATIONS},
            )
        return view

    def docs_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {}
        for prefix, records in (("order", self.orders), ("hold", self.holds)):
            for rid in ORDER_IDS if prefix == "order" else HOLD_IDS:
                doc = records.get(rid)
                view[f"{prefix}/{rid}"] = None if doc is None else doc_view(doc)
        return view


def stock_view(state: SkuState | None) -> Any:
    """A SKU's version and every location's counters (a location never written counts zeros)."""
    if state is None:
        return None
    assert set(state.locations) <= set(LOCATIONS)
    zero = LocationState()
    return (
        state.version,
        {
            loc: tuple(getattr(state.locations.get(loc, zero), s) for s in STATES)
            for loc in LOCATIONS
        },
    )


def doc_view(doc: MDoc | Order) -> tuple[Any, ...]:
    lines = tuple(
        (x.sku, x.location, x.qty, x.reserved, x.fulfilled, x.released, x.returned)
        for x in doc.lines
    )
    return (doc.kind, doc.state, lines, doc.expires_ms, doc.converted_to)


# --- the calls, sent to both ------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One engine call and the same call on the model; kept so it can be replayed verbatim."""

    label: str
    engine: Callable[[Engine], Awaitable[Outcome]]
    model: Callable[[Model], str]
    record: str | None = None  # "order/<id>" or "hold/<id>" whose record the outcome carries

    def __repr__(self) -> str:
        return self.label


def lines_of(raw: list[RawLine]) -> list[Line]:
    return [Line(sku=sku, qty=qty, location=loc) for sku, qty, loc in raw]


sku_or_kit = st.sampled_from((*SKUS, "KIT"))
locations = st.sampled_from(LOCATIONS)
#: Orders mostly ship from the two warehouses; L3 (a store) gets its stock from returns.
order_lines = st.lists(
    st.tuples(sku_or_kit, st.integers(1, 2), st.sampled_from(("L1", "L2", "L1", "L2", "L3"))),
    min_size=1,
    max_size=3,
)
#: None (the whole order) or [(which SKU, qty)]: the SKU mostly one of the order's own.
partial_lines = st.one_of(
    st.none(), st.lists(st.tuples(st.integers(0, 9), st.integers(1, 2)), min_size=1, max_size=2)
)
event_choice = st.integers(0, 19)


class EngineMachine(RuleBasedStateMachine):
    """Drives a real Engine (on its own event loop and connection) and the model in lockstep."""

    def __init__(self) -> None:
        super().__init__()
        assert URL is not None
        self.loop = asyncio.new_event_loop()
        self.clock_s = 1_800_000_000.0
        self.client = aioredis.Redis.from_url(URL)
        self.engine = Engine(self.client, clock=lambda: self.clock_s, bundles=BUNDLES)
        self.run(self.client.flushdb())
        self.run(self.engine.__aenter__())
        self.model = Model(now_ms=int(self.clock_s * 1000))
        self.calls: list[Call] = []
        self.events: list[str] = []
        self.serial = 0

    def run(self, awaitable: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await awaitable

        return self.loop.run_until_complete(wrap())

    def teardown(self) -> None:
        try:
            self.run(self.engine.__aexit__(None, None, None))
            self.run(self.client.aclose())
        finally:
            self.loop.close()

    def event(self, choice: int) -> str:
        """A fresh event id, or (1 time in 4) one of the last five already used."""
        back = choice - 14
        if back > 0 and len(self.events) >= back:
            return self.events[-back]
        self.serial += 1
        event_id = f"e{self.serial}"
        self.events.append(event_id)
        return event_id

    # -- stepping and checking -----------------------------------------------------------------

    def step(self, call: Call, *, remember: bool = True) -> None:
        if remember:
            self.calls.append(call)
        try:
            expected = call.model(self.model)
        except Refused as refusal:
            expected = refusal.code
        outcome: Outcome | None = None
        try:
            outcome = self.run(call.engine(self.engine))
        except InvsyncError as exc:
            got = exc.code
        else:
            got = "dup" if outcome.duplicate else "ok"
        assert got == expected, f"{call}: engine {got}, model {expected}"
        self.check(outcome, call.record)

    def check(self, outcome: Outcome | None, record: str | None) -> None:
        states, docs, index = self.run(self.read())
        stocks = {sku: stock_view(state) for sku, state in states.items()}
        assert stocks == self.model.stock_view()
        assert {rid: None if d is None else doc_view(d) for rid, d in docs.items()} == (
            self.model.docs_view()
        )
        assert index == {
            k.hold(hid).encode(): float(doc.expires_ms or 0)
            for hid, doc in self.model.holds.items()
            if doc.state == "held"
        }
        for sku in SKUS:
            for loc in LOCATIONS:
                on_hand = self.model.counters[sku, loc, "on_hand"]
                assert 0 <= self.model.counters[sku, loc, "reserved"] <= on_hand
        if outcome is None:
            return
        # What the call returned is what a read returns now: no second read needed.
        for sku, state in outcome.skus.items():
            assert states.get(sku) == state
        if record is None:
            assert outcome.order is None
        else:
            assert outcome.order == docs[record]

    async def read(
        self,
    ) -> tuple[dict[str, SkuState | None], dict[str, Order | None], dict[bytes, float]]:
        """Every SKU, order and hold and the expiry index, in one round trip."""
        names = [f"order/{oid}" for oid in ORDER_IDS] + [f"hold/{hid}" for hid in HOLD_IDS]
        async with self.client.pipeline(transaction=False) as pipe:
            for sku in (*SKUS, "KIT"):
                pipe.hgetall(k.inventory(sku))
            for oid in ORDER_IDS:
                pipe.hget(k.order(WEB, oid), "doc")
            for hid in HOLD_IDS:
                pipe.hget(k.hold(hid), "doc")
            pipe.zrange(k.HOLDS_EXPIRY, 0, -1, withscores=True)
            replies = await pipe.execute()
        states: dict[str, SkuState | None] = {}
        for sku, raw in zip((*SKUS, "KIT"), replies, strict=False):
            fields = {a.decode(): b.decode() for a, b in raw.items()}
            states[sku] = self.engine.sku_state(sku, fields) if fields else None
        docs = {
            name: None if raw is None else msgspec.json.decode(raw, type=Order)
            for name, raw in zip(names, replies[len(SKUS) + 1 : -1], strict=True)
        }
        return states, docs, dict(replies[-1])

    # -- rules ---------------------------------------------------------------------------------

    @initialize(stock=st.lists(st.integers(5, 15), min_size=6, max_size=6))
    def seed(self, stock: list[int]) -> None:
        cells = [(sku, loc) for sku in SKUS for loc in LOCATIONS[:2]]
        for (sku, loc), qty in zip(cells, stock, strict=True):
            ev = self.event(0)
            self.step(
                Call(
                    f"count({ev}, {sku}, {loc}, {qty})",
                    lambda e, ev=ev, sku=sku, loc=loc, qty=qty: e.count(ev, sku, loc, qty),
                    lambda m, ev=ev, sku=sku, loc=loc, qty=qty: m.count(
                        ev, sku, loc, qty, "on_hand"
                    ),
                ),
                remember=False,
            )

    @rule(
        sku=st.sampled_from(SKUS),
        location=locations,
        qty=st.integers(0, 12),
        state=st.sampled_from(("on_hand", "on_hand", "safety_stock", "damaged", "incoming")),
        choice=event_choice,
    )
    def count(self, sku: str, location: str, qty: int, state: str, choice: int) -> None:
        ev = self.event(choice)
        self.step(
            Call(
                f"count({ev}, {sku}, {location}, {qty}, {state})",
                lambda e: e.count(ev, sku, location, qty, state=state),
                lambda m: m.count(ev, sku, location, qty, state),
            )
        )

    @rule(
        sku=st.sampled_from(SKUS),
        location=locations,
        delta=st.integers(-4, 6).filter(bool),
        choice=event_choice,
    )
    def adjust(self, sku: str, location: str, delta: int, choice: int) -> None:
        ev = self.event(choice)
        self.step(
            Call(
                f"adjust({ev}, {sku}, {location}, {delta})",
                lambda e: e.adjust(ev, sku, location, delta),
                lambda m: m.adjust(ev, sku, location, delta),
            )
        )

    def pick(self, pool: tuple[str, ...], preferred: list[str], choice: int) -> str:
        """Mostly one of ``preferred`` (if any), sometimes any id of ``pool``."""
        if choice < 8 and preferred:
            return preferred[choice % len(preferred)]
        return pool[choice % len(pool)]

    @rule(
        order_choice=st.integers(0, 9),
        lines=order_lines,
        hold_choice=st.integers(0, 9),
        choice=event_choice,
    )
    def reserve(
        self, order_choice: int, lines: list[RawLine], hold_choice: int, choice: int
    ) -> None:
        unused = [o for o in ORDER_IDS if o not in self.model.orders]
        order_id = self.pick(ORDER_IDS, unused, order_choice)
        held = [h for h, doc in sorted(self.model.holds.items()) if doc.state == "held"]
        hold_id = None if hold_choice < 6 else self.pick(HOLD_IDS, held, hold_choice - 6)
        ev = self.event(choice)
        self.step(
            Call(
                f"reserve({ev}, {order_id}, {lines}, hold={hold_id})",
                lambda e: e.reserve(ev, WEB, order_id, lines_of(lines), hold_id=hold_id),
                lambda m: m.reserve("order", ev, order_id, lines, hold_id=hold_id),
                record=f"order/{order_id}",
            )
        )

    @rule(
        sku=st.sampled_from(SKUS),
        location=locations,
        extra=st.sampled_from((0, 1, -1)),
        order_choice=st.integers(0, 9),
        hold_choice=st.integers(0, 9),
    )
    def reserve_to_the_brim(
        self, sku: str, location: str, extra: int, order_choice: int, hold_choice: int
    ) -> None:
        """Ask for exactly what is free (or one more, or one less): the boundary of every rule
        about what a reservation may use (safety stock yes, damaged no, a converted hold's)."""
        qty = max(1, self.model.free(sku, location) + extra)
        self.reserve(order_choice, [(sku, qty, location)], hold_choice, 0)

    def order_op(
        self,
        op: str,
        order_choice: int,
        partial: list[tuple[int, int]] | None,
        location: str,
        choice: int,
    ) -> None:
        # Mostly an order this can apply to: units still reserved, or shipped and not returned.
        live = [
            oid
            for oid, doc in sorted(self.model.orders.items())
            if any((x.fulfilled - x.returned if op == "return" else x.reserved) for x in doc.lines)
        ]
        order_id = self.pick(ORDER_IDS, live or sorted(self.model.orders), order_choice)
        ev = self.event(choice)
        lines: list[RawLine] | None = None
        if partial is not None:
            doc = self.model.orders.get(order_id)
            own = [x.sku for x in doc.lines] if doc else []
            lines = [(self.pick((*SKUS, "KIT"), own, which), qty, None) for which, qty in partial]
        parsed = None if lines is None else lines_of(lines)

        def call(e: Engine) -> Awaitable[Outcome]:
            if op == "release":
                return e.release(ev, WEB, order_id, parsed)
            if op == "fulfil":
                return e.fulfil(ev, WEB, order_id, parsed)
            return e.return_(ev, WEB, order_id, location, parsed)

        self.step(
            Call(
                f"{op}({ev}, {order_id}, {lines}, at={location})",
                call,
                lambda m: m.order_op(op, ev, order_id, lines, location),
                record=f"order/{order_id}",
            )
        )

    @precondition(lambda self: self.model.orders)
    @rule(order_choice=st.integers(0, 9), lines=partial_lines, choice=event_choice)
    def release(self, order_choice: int, lines: list[tuple[int, int]] | None, choice: int) -> None:
        self.order_op("release", order_choice, lines, "L1", choice)

    @precondition(lambda self: self.model.orders)
    @rule(order_choice=st.integers(0, 9), lines=partial_lines, choice=event_choice)
    def fulfil(self, order_choice: int, lines: list[tuple[int, int]] | None, choice: int) -> None:
        self.order_op("fulfil", order_choice, lines, "L1", choice)

    @precondition(lambda self: self.model.orders)
    @rule(
        order_choice=st.integers(0, 9),
        lines=partial_lines,
        location=locations,
        choice=event_choice,
    )
    def return_(
        self, order_choice: int, lines: list[tuple[int, int]] | None, location: str, choice: int
    ) -> None:
        self.order_op("return", order_choice, lines, location, choice)

    @rule(
        hold_choice=st.integers(0, 9),
        lines=order_lines,
        ttl_s=st.integers(1, 120),
        choice=event_choice,
    )
    def place_hold(self, hold_choice: int, lines: list[RawLine], ttl_s: int, choice: int) -> None:
        unused = [h for h in HOLD_IDS if h not in self.model.holds]
        hold_id = self.pick(HOLD_IDS, unused, hold_choice)
        ev = self.event(choice)
        self.step(
            Call(
                f"place_hold({ev}, {hold_id}, {lines}, ttl={ttl_s})",
                lambda e: e.place_hold(ev, hold_id, lines_of(lines), ttl_s),
                lambda m: m.reserve("hold", ev, hold_id, lines, ttl_ms=ttl_s * 1000),
                record=f"hold/{hold_id}",
            )
        )

    @precondition(lambda self: self.model.holds)
    @rule(
        hold_choice=st.integers(0, 9),
        reason=st.sampled_from(("released", "released", "expired")),
        choice=event_choice,
    )
    def release_hold(self, hold_choice: int, reason: str, choice: int) -> None:
        held = [h for h, doc in sorted(self.model.holds.items()) if doc.state == "held"]
        hold_id = self.pick(HOLD_IDS, held, hold_choice)
        ev = self.event(choice)
        self.step(
            Call(
                f"release_hold({ev}, {hold_id}, {reason})",
                lambda e: e.release_hold(ev, hold_id, reason=reason),
                lambda m: m.release_hold(ev, hold_id, reason),
                record=f"hold/{hold_id}",
            )
        )

    @rule(seconds=st.integers(0, 90))
    def time_passes_and_holds_expire(self, seconds: int) -> None:
        self.clock_s += seconds
        self.model.now_ms = int(self.clock_s * 1000)
        expected = self.model.expire_holds()
        outcomes = self.run(self.engine.expire_holds())
        got = set()
        for outcome in outcomes:
            assert not outcome.duplicate
            assert outcome.order is not None
            assert outcome.order.state == "expired"
            got.add(outcome.order.order_id)
        assert got == expected
        self.check(None, None)

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        if not self.calls:
            return
        call = data.draw(st.sampled_from(self.calls), label="replayed")
        self.step(call, remember=False)

    @rule(
        op=st.sampled_from(("count", "adjust", "reserve", "release", "place_hold", "ttl")),
        bad=st.sampled_from((0, -1, 1.5, True, "2")),
    )
    def bad_quantity_changes_nothing(self, op: str, bad: Any) -> None:
        # Map each drawn value to one that is bad for this particular parameter.
        if op == "count" and bad == 0:
            bad = -1  # 0 is a valid count
        elif op == "adjust" and bad == -1:
            bad = 0  # -1 is a valid adjustment
        elif op == "ttl":
            bad = -1 if bad in (True, "2") else 0.0009 if bad == 1.5 else bad  # < 1 ms
        ev = self.event(0)
        calls: dict[str, Callable[[Engine], Awaitable[Outcome]]] = {
            "count": lambda e: e.count(ev, "A", "L1", bad),
            "adjust": lambda e: e.adjust(ev, "A", "L1", bad),
            "reserve": lambda e: e.reserve(ev, WEB, "o1", [Line(sku="A", qty=bad, location="L1")]),
            "release": lambda e: e.release(ev, WEB, "o1", [Line(sku="A", qty=bad)]),
            "place_hold": lambda e: e.place_hold(
                ev, "h1", [Line(sku="A", qty=bad, location="L1")], 5
            ),
            "ttl": lambda e: e.place_hold(ev, "h1", [Line(sku="A", qty=1, location="L1")], bad),
        }

        def refuse(m: Model) -> str:
            raise Refused("INVALID_QUANTITY")

        self.step(Call(f"{op}(bad={bad!r})", calls[op], refuse), remember=False)


@pytest.fixture
def model_url(redis_url: str) -> Iterator[str]:
    global URL
    URL = redis_url
    yield redis_url
    URL = None


def test_engine_matches_the_model(model_url: str) -> None:
    run_state_machine_as_test(
        EngineMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
