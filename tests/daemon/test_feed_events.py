"""The feed's accepted-events messages (``"events": true``), which the live console lists: one
message per accepted request, bounded however large the request, only for clients that asked,
whatever their SKU and channel filters. Real loopback websockets, as in test_feed.py."""

from __future__ import annotations

from invsync.core.events import EventLine, OrderCreated, StockCounted
from invsync.daemon.feed import EVENTS_LISTED, SKUS_LISTED
from invsync.tests.daemon import test_feed
from invsync.tests.daemon.test_feed import Serve, client, recv, subscribe, until_barrier

# test_feed.py's fixtures: the hub served on loopback, and the feed's token in the environment.
serve = test_feed.serve
_feed_token = test_feed._feed_token


def counted(event_id: str, sku: str) -> StockCounted:
    return StockCounted(id=event_id, location="wh-east", sku=sku, on_hand=5)


async def test_clients_that_ask_hear_of_each_accepted_request(serve: Serve) -> None:
    feed = await serve()
    hub, stock, url = feed.hub, feed.stock, feed.url
    async with client(url) as console, client(url) as plain, client(url) as one_sku:
        await subscribe(console, events=True)
        await subscribe(plain)
        await subscribe(one_sku, skus=["TEE"], events=True)
        order = OrderCreated(
            id="ev-2",
            channel="web",
            order_id="ORD-1",
            lines=(EventLine(sku="CAP", qty=1), EventLine(sku="MUG", qty=2)),
        )
        hub.publish_events([counted("ev-1", "TEE"), order], source="http")
        stock.set("CAP", "web", 4)
        hub.publish_exception({"id": "barrier"})

        seen = await until_barrier(console, "barrier")
        assert [m["type"] for m in seen] == ["event", "availability"]
        event = seen[0]
        assert event["source"] == "http" and event["count"] == 2
        assert isinstance(event["ts"], int)
        assert event["events"] == [
            {
                "id": "ev-1",
                "event_type": "stock.counted",
                "skus": ["TEE"],
                "more_skus": 0,
                "channel": None,
                "order_id": None,
            },
            {
                "id": "ev-2",
                "event_type": "order.created",
                "skus": ["CAP", "MUG"],
                "more_skus": 0,
                "channel": "web",
                "order_id": "ORD-1",
            },
        ]
        # Not asked for: nothing of it; a SKU filter filters availability, not the events.
        assert [m["type"] for m in await until_barrier(plain, "barrier")] == ["availability"]
        assert [m["type"] for m in await until_barrier(one_sku, "barrier")] == ["event"]

        # A new subscribe without "events" stops them.
        await subscribe(console)
        hub.publish_events([counted("ev-3", "TEE")], source="http")
        hub.publish_exception({"id": "barrier-2"})
        assert await until_barrier(console, "barrier-2") == []


async def test_a_bulk_request_is_one_bounded_message(serve: Serve) -> None:
    feed = await serve(max_queue=10)
    hub, url = feed.hub, feed.url
    lines = tuple(EventLine(sku=f"S{i}", qty=1) for i in range(SKUS_LISTED + 3))
    big_order = OrderCreated(id="big", channel="web", order_id="ORD-9", lines=lines)
    events = [big_order, *(counted(f"c-{i}", f"SKU-{i}") for i in range(5000))]
    async with client(url) as console:
        await subscribe(console, events=True)
        hub.publish_events(events, source="import")  # 5,001 events, far past max_queue
        message = await recv(console)
        assert message["type"] == "event" and message["count"] == 5001
        assert len(message["events"]) == EVENTS_LISTED
        first = message["events"][0]
        assert first["skus"] == [f"S{i}" for i in range(SKUS_LISTED)] and first["more_skus"] == 3
        hub.publish_exception({"id": "barrier"})
        assert await until_barrier(console, "barrier") == []  # no resync: it was one message


async def test_nothing_is_logged_while_no_client_asks(serve: Serve) -> None:
    feed = await serve()
    hub, url = feed.hub, feed.url
    async with client(url) as plain:
        await subscribe(plain)
        before = hub.log_size
        hub.publish_events([counted("ev-1", "TEE")], source="http")
        assert hub.log_size == before
