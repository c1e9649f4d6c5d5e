"""The exception queue against a real store: each kind produced by its cause through the
processor (or ``report_drift`` / the breaker hook), and resolved by each of its actions with the
resulting stock and order state checked."""

from __future__ import annotations

import json
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from invsync.core.config import Config, load_config
from invsync.core.errors import InvalidRequest
from invsync.core.events import BadEvent, decode_events
from invsync.daemon.incidents import (
    ActionNotPossible,
    AlreadyResolved,
    ExceptionQueue,
    ExceptionRecord,
    UnknownAction,
    UnknownException,
    exception_id,
)
from invsync.daemon.incidents.rules import DAY_MS
from invsync.daemon.intake import Entry
from invsync.daemon.processor import Processor
from invsync.engine import keys
from invsync.engine.engine import Engine
from invsync.engine.models import SkuState
from invsync.metrics import definitions as m
from tests.conftest import FakeClock

CONFIG = """
[[locations]]
id = "wh-east"
priority = 1

[[locations]]
id = "wh-west"
priority = 2

[[channels]]
id = "shop"
kind = "shopify"
"""


def make_config(tmp_path: Path, extra: str = "") -> Config:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG + extra)
    return load_config(path)


class Harness:
    """A processor wired to an exception queue, as the daemon wires them."""

    def __init__(self, engine: Engine, config: Config, clock: FakeClock) -> None:
        self.engine = engine
        self.config = config
        self.notified: list[SkuState] = []
        self.repushed: list[tuple[str, str | None]] = []
        self.published: list[ExceptionRecord] = []
        self.queue = ExceptionQueue(
            engine,
            lambda: self.config,
            repush=self._repush,
            publish=self.published.append,
            notify=self._notify,
            clock=clock,
        )
        self.processor = Processor(
            engine, lambda: self.config, self._notify, clock=clock, exceptions=self.queue
        )
        self.queue.reserve_again = self.processor.reserve_again
        self._seq = count(1)

    async def _notify(self, state: SkuState, accepted_ms: int) -> None:
        self.notified.append(state)

    async def _repush(self, channel: str, sku: str | None) -> None:
        self.repushed.append((channel, sku))

    async def send(self, **event: Any) -> None:
        (decoded,) = decode_events(json.dumps(event).encode())
        entry = Entry(id=f"{next(self._seq)}-0", event=decoded, source="test", accepted_ms=0)
        await self.processor.handle_batch([entry])

    async def stock(self, sku: str, location: str, **states: int) -> None:
        await self.send(
            id=f"count-{next(self._seq)}",
            type="stock.counted",
            sku=sku,
            location=location,
            **states,
        )

    async def order(self, event_id: str, order_id: str, *lines: tuple[str, int]) -> None:
        await self.send(
            id=event_id,
            type="order.created",
            channel="shop",
            order_id=order_id,
            lines=[{"sku": sku, "qty": qty} for sku, qty in lines],
        )

    async def only(self, kind: str) -> ExceptionRecord:
        records = await self.queue.query(kind=kind)
        assert len(records) == 1, records
        return records[0]

    async def on_hand(self, sku: str, location: str) -> int:
        state = await self.engine.stock(sku)
        assert state is not None
        return state.locations[location].on_hand - state.locations[location].reserved


@pytest.fixture
def h(engine: Engine, tmp_path: Path, clock: FakeClock) -> Harness:
    return Harness(engine, make_config(tmp_path), clock)


# --- producers -------------------------------------------------------------------------------


async def test_oversold_order_records_what_the_channel_was_shown_and_who_took_the_last_unit(
    h: Harness,
) -> None:
    await h.stock("TEE", "wh-east", on_hand=1)
    pushed_ms = 1_800_000_000_000
    await h.engine.redis.hset(keys.pushed("shop"), "TEE", keys.format_pushed(1, 1, pushed_ms))
    await h.order("e-1", "1001", ("TEE", 1))
    await h.order("e-2", "1002", ("TEE", 1))

    record = await h.only("oversold")
    assert record.id == exception_id("oversold", "shop", "1002", "e-2")
    assert (record.channel, record.order_id, record.sku, record.state) == (
        "shop",
        "1002",
        "TEE",
        "open",
    )
    assert record.details["pushed_to_channel"]["TEE"] == {
        "available": 1,
        "version": 1,
        "at_ms": pushed_ms,
        "at": "2027-01-15T08:00:00Z",
    }
    assert record.details["last_unit_taken_by"]["TEE"]["order_id"] == "1001"
    assert record.details["last_unit_taken_by"]["TEE"]["channel"] == "shop"
    assert record.details["short"] == {"TEE": 1}
    actions = {o.action: o for o in record.options}
    assert set(actions) == {"backorder", "reroute", "cancel", "substitute", "dismiss"}
    assert not actions["backorder"].possible  # nothing incoming
    assert "not automatic" in actions["cancel"].effect  # no adapter can send a cancel
    # The rejection record stays for GET /v1/orders.
    assert await h.engine.redis.get(keys.rejection("shop", "1002")) is not None
    assert h.published and h.published[-1].id == record.id


async def test_replayed_event_finds_its_record_instead_of_adding_one(h: Harness) -> None:
    await h.stock("TEE", "wh-east", on_hand=0)
    await h.order("e-1", "1001", ("TEE", 1))
    await h.order("e-1", "1001", ("TEE", 1))
    assert len(await h.queue.query()) == 1
    assert (await h.queue.open_counts())["oversold"] == 1


async def test_order_for_a_sku_never_stocked_is_unknown_sku(h: Harness) -> None:
    await h.order("e-1", "1001", ("GHOST", 2))
    record = await h.only("unknown_sku")
    assert record.details["unknown_skus"] == ["GHOST"]
    assert await h.queue.query(kind="oversold") == []
    raw = await h.engine.redis.get(keys.rejection("shop", "1001"))
    assert json.loads(raw)["state"] == "unknown_sku"


async def test_cancel_refused_after_fulfilment(h: Harness) -> None:
    await h.stock("TEE", "wh-east", on_hand=5)
    await h.order("e-1", "1001", ("TEE", 2))
    await h.send(id="f-1", type="order.fulfilled", channel="shop", order_id="1001")
    await h.send(id="c-1", type="order.cancelled", channel="shop", order_id="1001")
    record = await h.only("cancel_after_fulfilment")
    assert record.details["fulfilled"] == 2 and record.details["still_reserved"] == 0
    assert await h.queue.query(kind="bad_event") == []


async def test_other_refused_events_are_bad_events(h: Harness) -> None:
    await h.stock("TEE", "wh-east", on_hand=1)
    await h.send(id="adj-1", type="stock.adjusted", sku="TEE", location="wh-east", delta=-5)
    await h.send(id="c-9", type="order.cancelled", channel="shop", order_id="nope")
    records = await h.queue.query(kind="bad_event")
    assert {r.details["code"] for r in records} == {"NEGATIVE_STOCK", "UNKNOWN_ORDER"}
    assert {r.event_id for r in records} == {"adj-1", "c-9"}


async def test_drift_report_opens_one_record_per_difference(h: Harness) -> None:
    before = m.DRIFT.labels(channel="shop")._value.get()
    assert await h.queue.report_drift("shop", "TEE", 4, 4) is None
    record = await h.queue.report_drift("shop", "TEE", 7, 4)
    again = await h.queue.report_drift("shop", "TEE", 7, 4)
    assert record is not None and again is not None and again.id == record.id
    assert record.details == {"theirs": 7, "ours": 4, "difference": 3}
    assert m.DRIFT.labels(channel="shop")._value.get() == before + 2

    resolved = await h.queue.resolve(record.id, "push_ours", by="ana")
    assert h.repushed == [("shop", "TEE")]
    assert (resolved.state, resolved.resolved_by, resolved.action) == (
        "resolved",
        "ana",
        "push_ours",
    )


async def test_channel_outage_past_the_threshold_opens_one_record_and_closes_with_the_breaker(
    engine: Engine, tmp_path: Path, clock: FakeClock
) -> None:
    h = Harness(engine, make_config(tmp_path, "\n[exceptions]\nunreachable_after_s = 30\n"), clock)
    h.queue.breaker_changed("shop", closed=False)
    clock.advance(10)
    await h.queue.tick()
    assert await h.queue.query() == []
    h.queue.breaker_changed("shop", closed=False)  # open -> half-open: the same outage
    clock.advance(25)
    await h.queue.tick()
    await h.queue.tick()
    record = await h.only("channel_unreachable")
    assert m.EXCEPTIONS_OPEN.labels(kind="channel_unreachable")._value.get() == 1

    h.queue.breaker_changed("shop", closed=True)
    await h.queue.tick()
    closed = await h.queue.get(record.id)
    assert (closed.state, closed.resolved_by, closed.action) == (
        "auto_resolved",
        "breaker",
        "recovered",
    )
    assert m.EXCEPTIONS_OPEN.labels(kind="channel_unreachable")._value.get() == 0


# --- actions ---------------------------------------------------------------------------------


async def test_reroute_reserves_once_stock_arrived_and_notifies_the_sku(h: Harness) -> None:
    await h.stock("TEE", "wh-east", on_hand=0)
    await h.order("e-1", "1001", ("TEE", 3))
    record = await h.only("oversold")

    still = await h.queue.resolve(record.id, "reroute")
    assert still.state == "open" and still.attempts[-1]["ok"] is False

    await h.stock("TEE", "wh-west", on_hand=5)
    h.notified.clear()
    done = await h.queue.resolve(record.id, "reroute", by="bo")
    assert done.state == "resolved" and done.resolution is not None
    assert done.resolution["locations"] == ["wh-west"]
    order = await h.engine.order("shop", "1001")
    assert order is not None and order.state == "reserved"
    assert await h.on_hand("TEE", "wh-west") == 2
    assert await h.engine.redis.get(keys.rejection("shop", "1001")) is None
    assert [s.sku for s in h.notified] == ["TEE"]
    assert await h.queue.query() == []


async def test_substitute_reserves_another_sku(h: Harness) -> None:
    await h.stock("TEE", "wh-east", on_hand=0)
    await h.stock("TEE-2", "wh-east", on_hand=4)
    await h.order("e-1", "1001", ("TEE", 1))
    record = await h.only("oversold")
    with pytest.raises(InvalidRequest):
        await h.queue.resolve(record.id, "substitute")
    done = await h.queue.resolve(record.id, "substitute", sku="TEE-2")
    assert done.resolution is not None and done.resolution["substituted"] == "TEE-2"
    order = await h.engine.order("shop", "1001")
    assert order is not None and [x.sku for x in order.lines] == ["TEE-2"]
    assert await h.on_hand("TEE-2", "wh-east") == 3


async def test_cancel_records_that_the_channel_was_not_told(h: Harness) -> None:
    await h.stock("TEE", "wh-east", on_hand=0)
    await h.order("e-1", "1001", ("TEE", 1))
    record = await h.only("oversold")
    done = await h.queue.resolve(record.id, "cancel")
    assert done.resolution is not None
    assert done.resolution["channel_notified"] is False
    assert "cancellations" in done.resolution["channel_not_notified_because"]
    raw = await h.engine.redis.get(keys.rejection("shop", "1001"))
    assert json.loads(raw)["state"] == "cancelled"


async def test_cancel_after_partial_fulfilment_releases_what_is_left(h: Harness) -> None:
    await h.stock("TEE", "wh-east", on_hand=5)
    await h.order("e-1", "1001", ("TEE", 3))
    await h.send(
        id="f-1",
        type="order.fulfilled",
        channel="shop",
        order_id="1001",
        lines=[{"sku": "TEE", "qty": 1}],
    )
    await h.send(
        id="c-1",
        type="order.cancelled",
        channel="shop",
        order_id="1001",
        lines=[{"sku": "TEE", "qty": 3}],
    )
    record = await h.only("cancel_after_fulfilment")
    assert record.details["still_reserved"] == 2
    done = await h.queue.resolve(record.id, "cancel")
    assert done.resolution is not None and done.resolution["released"] == 2
    state = await h.engine.stock("TEE")
    assert state is not None and state.locations["wh-east"].reserved == 0
    assert state.locations["wh-east"].on_hand == 4


async def test_backorder_keeps_the_order_open_until_the_incoming_date(
    h: Harness, clock: FakeClock
) -> None:
    await h.stock("TEE", "wh-east", on_hand=0, incoming=10)
    await h.order("e-1", "1001", ("TEE", 2))
    record = await h.only("oversold")
    eta = int(clock.now * 1000) + 7 * DAY_MS  # incoming_lead_days defaults to 7
    assert record.details["backorder_until_ms"] == eta
    done = await h.queue.resolve(record.id, "backorder")
    assert done.resolution is not None and done.resolution["expected_ms"] == eta
    raw = json.loads(await h.engine.redis.get(keys.rejection("shop", "1001")))
    assert (raw["state"], raw["expected_ms"]) == ("backordered", eta)


async def test_backorder_is_dated_by_the_incoming_eta_a_count_gave(
    h: Harness, clock: FakeClock
) -> None:
    await h.send(
        id="count-eta",
        type="stock.counted",
        sku="TEE",
        location="wh-east",
        on_hand=0,
        incoming=10,
        incoming_eta="2027-02-01",
    )
    await h.order("e-1", "1001", ("TEE", 2))
    record = await h.only("oversold")
    due = 1_801_440_000_000  # 2027-02-01T00:00:00Z
    assert record.details["incoming_due_ms"] == {"TEE": due}
    assert record.details["backorder_until_ms"] == due
    done = await h.queue.resolve(record.id, "backorder")
    assert done.resolution is not None and done.resolution["expected_date"] == "2027-02-01"
    # A later count with nothing incoming drops the date.
    await h.send(id="count-0", type="stock.counted", sku="TEE", location="wh-east", incoming=0)
    assert await h.engine.redis.hgetall(keys.incoming_eta("TEE")) == {}


def test_an_incoming_eta_needs_incoming_and_a_real_date() -> None:
    base = {"id": "c", "type": "stock.counted", "sku": "T", "location": "wh-east"}
    with pytest.raises(BadEvent, match="needs incoming"):
        decode_events(json.dumps({**base, "on_hand": 1, "incoming_eta": "2027-01-01"}).encode())
    with pytest.raises(BadEvent, match="not a date"):
        decode_events(json.dumps({**base, "incoming": 1, "incoming_eta": "2027-02-30"}).encode())
    with pytest.raises(BadEvent, match="incoming_eta"):
        decode_events(json.dumps({**base, "incoming": 1, "incoming_eta": "soon"}).encode())


async def test_a_second_cancellation_of_a_cancelled_or_rejected_order_is_no_exception(
    h: Harness,
) -> None:
    await h.stock("TEE", "wh-east", on_hand=1)
    await h.order("e-1", "1001", ("TEE", 1))
    cancel = {"type": "order.cancelled", "channel": "shop", "order_id": "1001"}
    await h.send(id="x-1", **cancel)
    await h.send(id="x-1-echo", **cancel)  # e.g. the channel's webhook after our own cancel
    await h.order("e-2", "1002", ("TEE", 5))  # oversold: never reserved
    await h.send(id="x-2", type="order.cancelled", channel="shop", order_id="1002")
    assert await h.queue.query(kind="bad_event") == []
    # An order nobody knows is still a bad event.
    await h.send(id="x-3", type="order.cancelled", channel="shop", order_id="404")
    (bad,) = await h.queue.query(kind="bad_event")
    assert bad.order_id == "404" and bad.details["code"] == "UNKNOWN_ORDER"


async def test_backorder_without_incoming_stock_is_refused(h: Harness) -> None:
    await h.stock("TEE", "wh-east", on_hand=0, incoming=1)
    await h.order("e-1", "1001", ("TEE", 2))
    record = await h.only("oversold")
    with pytest.raises(ActionNotPossible):
        await h.queue.resolve(record.id, "backorder")
    assert (await h.queue.get(record.id)).state == "open"


async def test_policy_backorders_when_incoming_arrives_within_the_window(
    engine: Engine, tmp_path: Path, clock: FakeClock
) -> None:
    policy = '\n[exceptions]\nauto_resolve = { oversold = "backorder" }\n'
    h = Harness(engine, make_config(tmp_path, policy + "backorder_within_days = 10\n"), clock)
    await h.stock("TEE", "wh-east", on_hand=0, incoming=5)
    await h.order("e-1", "1001", ("TEE", 2))
    record = (await h.queue.query(state=None))[0]
    assert (record.state, record.resolved_by, record.action) == (
        "auto_resolved",
        "policy",
        "backorder",
    )
    assert await h.queue.query() == []

    far = tmp_path / "far"
    far.mkdir()
    h.config = make_config(far, policy + "backorder_within_days = 3\n")
    await h.order("e-2", "1002", ("TEE", 2))
    (open_one,) = await h.queue.query()
    assert open_one.order_id == "1002" and "after 3 days" in open_one.attempts[0]["why"]


async def test_resolve_errors(h: Harness) -> None:
    await h.stock("TEE", "wh-east", on_hand=0)
    await h.order("e-1", "1001", ("TEE", 1))
    record = await h.only("oversold")
    with pytest.raises(UnknownException):
        await h.queue.resolve("OVS-0000000000", "dismiss")
    with pytest.raises(UnknownAction):
        await h.queue.resolve(record.id, "push_ours")
    done = await h.queue.resolve(record.id, "dismiss", by="cy", note="customer called")
    assert done.resolution == {"note": "customer called"}
    with pytest.raises(AlreadyResolved):
        await h.queue.resolve(record.id, "dismiss")
    assert [r.id for r in await h.queue.query(state="resolved")] == [record.id]


async def test_listing_is_newest_first_and_filters(h: Harness, clock: FakeClock) -> None:
    for i in range(3):
        await h.queue.report_drift("shop", f"S{i}", 1, 0)
        clock.advance(1)
    await h.queue.report_drift("other", "S9", 1, 0)
    assert [r.sku for r in await h.queue.query(kind="drift")] == ["S9", "S2", "S1", "S0"]
    assert [r.sku for r in await h.queue.query(channel="shop", limit=2)] == ["S2", "S1"]
    with pytest.raises(InvalidRequest):
        await h.queue.query(kind="nope")


# --- push_refused ----------------------------------------------------------------------------


async def test_a_refused_push_opens_one_record_per_channel_and_sku_while_it_is_open(
    h: Harness, clock: FakeClock
) -> None:
    record = await h.queue.raise_push_refused("shop", "TEE", 4, "unknown listing")
    assert record.id == exception_id("push_refused", "shop", "TEE")
    assert (record.kind, record.channel, record.sku, record.state) == (
        "push_refused",
        "shop",
        "TEE",
        "open",
    )
    assert record.details == {"available": 4, "reason": "unknown listing"}
    assert "unknown listing" in record.summary and "TEE" in record.summary
    assert {o.action: o.possible for o in record.options} == {"retry_push": True, "dismiss": True}
    assert h.published and h.published[-1].id == record.id

    # The channel refuses the SKU again (another value): the open record answers.
    clock.advance(1)
    again = await h.queue.raise_push_refused("shop", "TEE", 3, "unknown listing")
    assert again.id == record.id and again.details["available"] == 4
    assert [r.id for r in await h.queue.query(kind="push_refused")] == [record.id]

    clock.advance(1)
    other = await h.queue.raise_push_refused("shop", "CAP", 1, "invalid SKU")
    await h.queue.raise_push_refused("market", "TEE", 2, "listing closed")
    assert other.id != record.id
    assert [r.sku for r in await h.queue.query(kind="push_refused", channel="shop")] == [
        "CAP",
        "TEE",
    ]
    assert (await h.queue.open_counts())["push_refused"] == 3
    await h.queue.sample_metrics()
    assert m.EXCEPTIONS_OPEN.labels(kind="push_refused")._value.get() == 3


async def test_retry_push_resends_our_value_and_a_later_refusal_opens_a_new_record(
    h: Harness, clock: FakeClock
) -> None:
    record = await h.queue.raise_push_refused("shop", "TEE", 4, "unknown listing")
    done = await h.queue.resolve(record.id, "retry_push", by="ana")
    assert h.repushed == [("shop", "TEE")]
    assert (done.state, done.resolved_by, done.action, done.resolution) == (
        "resolved",
        "ana",
        "retry_push",
        {"repushed": True},
    )
    assert await h.queue.query(kind="push_refused") == []

    # The listing was not fixed after all: the retried push is refused again.
    clock.advance(5)
    second = await h.queue.raise_push_refused("shop", "TEE", 4, "unknown listing")
    assert second.id != record.id and second.state == "open"
    assert second.details["previous"] == record.id
    assert (await h.queue.raise_push_refused("shop", "TEE", 4, "x")).id == second.id
    dismissed = await h.queue.resolve(second.id, "dismiss", by="bo")
    assert dismissed.state == "resolved" and h.repushed == [("shop", "TEE")]
    with pytest.raises(AlreadyResolved):
        await h.queue.resolve(second.id, "retry_push")
    with pytest.raises(UnknownAction):
        await h.queue.resolve(
            (await h.queue.raise_push_refused("shop", "TEE", 4, "x")).id, "push_ours"
        )
    assert [r.id for r in await h.queue.query(kind="push_refused", state="resolved")] == [
        second.id,
        record.id,
    ]


async def test_retry_push_is_not_possible_where_no_re_push_is_wired(
    engine: Engine, tmp_path: Path, clock: FakeClock
) -> None:
    config = make_config(tmp_path)
    queue = ExceptionQueue(engine, lambda: config, clock=clock)
    record = await queue.raise_push_refused("shop", "TEE", 4, "unknown listing")
    with pytest.raises(ActionNotPossible):
        await queue.resolve(record.id, "retry_push")
    still = await queue.get(record.id)
    assert still.state == "open" and still.action is None
    # The claim was given back: the record can still be resolved.
    assert (await queue.resolve(record.id, "dismiss")).state == "resolved"


async def test_policy_can_dismiss_refused_pushes(
    engine: Engine, tmp_path: Path, clock: FakeClock
) -> None:
    policy = '\n[exceptions]\nauto_resolve = { push_refused = "dismiss" }\n'
    h = Harness(engine, make_config(tmp_path, policy), clock)
    record = await h.queue.raise_push_refused("shop", "TEE", 4, "unknown listing")
    assert (record.state, record.resolved_by, record.action) == (
        "auto_resolved",
        "policy",
        "dismiss",
    )
    assert await h.queue.query() == []
