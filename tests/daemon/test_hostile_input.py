"""Hostile and careless input at every front door, over real loopback HTTP (issue 12, parts 4-6).

Each test is one hole measured on an older main, shown closed: what the engine would refuse is
refused at intake with a 400 that names it, nothing of a refused request is recorded, every body
is capped, deep JSON is a 400 (never a 500), a partner's webhook cannot rewrite our stock, and a
channel held back for a missing credential answers its webhooks with a 503 naming it.

The daemon is stood in for by ``test_http.ApiContext`` (a real engine and intake stream on the
test Redis) served by the real ``HttpServer``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from invsync.core.events import MAX_LINES, MAX_QUANTITY
from invsync.daemon.drift import drift_routes
from invsync.daemon.http import MAX_SMALL_BODY, build_app
from invsync.daemon.incidents import exception_routes
from invsync.daemon.intake import STREAM
from invsync.daemon.server import HttpServer
from tests.daemon.test_http import (
    ApiContext,
    call,
    client_headers,
    ctx,  # noqa: F401  (the fixture)
    error_of,
    portal_body,
    signed,
)


def _never(*args: Any) -> Any:
    raise AssertionError("a refused request must not reach the daemon's parts")


@pytest.fixture
async def api(ctx: ApiContext) -> AsyncIterator[aiohttp.ClientSession]:  # noqa: F811
    """The API with the exception and drift-check routes, as the daemon serves them."""
    routes = [*exception_routes(_never), *drift_routes(_never)]
    async with (
        HttpServer(build_app(ctx, routes=routes), "127.0.0.1", 0) as server,
        aiohttp.ClientSession(base_url=server.url, headers=client_headers(ctx.config)) as http,
    ):
        yield http


async def post_events(http: aiohttp.ClientSession, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer, _ = await call(http, "POST", "/v1/events", data=data)
    return status, answer


def adjusted(**fields: Any) -> dict[str, Any]:
    return {
        "id": "adj-1",
        "type": "stock.adjusted",
        "location": "wh-east",
        "sku": "TEE",
        "delta": 3,
        **fields,
    }


# --- one validation: refused at intake, as the engine would -------------------------------------

BAD_EVENTS = {
    "SKU with a trailing newline": (adjusted(sku="ABC\n"), "$[0].sku"),
    "SKU with a control character": (adjusted(sku="A\x01B"), "$[0].sku"),
    "SKU with DEL": (adjusted(sku="A\x7fB"), "$[0].sku"),
    "order id with a trailing newline": (
        {"id": "c-1", "type": "order.cancelled", "channel": "web", "order_id": "ORD-NL\n"},
        "$[0].order_id",
    ),
    "event id with a control character": (adjusted(id="e\x02"), "$[0].id"),
    "delta 0": (adjusted(delta=0), "delta must not be 0"),
    "delta past the ceiling": (adjusted(delta=-(MAX_QUANTITY + 1)), "$[0].delta"),
    "on_hand past the ceiling": (
        {"id": "n-1", "type": "stock.counted", "location": "wh-east", "sku": "TEE",
         "on_hand": MAX_QUANTITY + 1},
        "$[0].on_hand",
    ),
    "qty past the ceiling": (
        {"id": "o-1", "type": "order.created", "channel": "web", "order_id": "1",
         "lines": [{"sku": "TEE", "qty": 10**12}]},
        "$[0].lines[0].qty",
    ),
    "a reason with a newline": (adjusted(reason="x\ny"), "$[0].reason"),
}


@pytest.mark.parametrize("case", BAD_EVENTS)
async def test_what_the_engine_refuses_is_refused_at_intake(
    api: aiohttp.ClientSession, redis: aioredis.Redis, case: str
) -> None:
    event, named = BAD_EVENTS[case]
    status, answer = await post_events(api, [event])
    assert status == 400, answer
    code, message = error_of(answer)
    assert code == "BAD_EVENT"
    assert named in message
    assert await redis.xlen(STREAM) == 0


@pytest.mark.parametrize("kind", ["order.cancelled", "order.fulfilled", "order.returned"])
async def test_every_event_kind_has_bounded_lines(
    api: aiohttp.ClientSession, redis: aioredis.Redis, kind: str
) -> None:
    """The measured hole: 10,000 lines were accepted on these kinds."""
    event: dict[str, Any] = {"id": "l-1", "type": kind, "channel": "web", "order_id": "1"}
    if kind == "order.returned":
        event["location"] = "wh-east"
    event["lines"] = [{"sku": "TEE", "qty": 1}] * (MAX_LINES + 1)
    status, answer = await post_events(api, event)
    assert status == 400, answer
    assert f"length <= {MAX_LINES}" in error_of(answer)[1]
    event["lines"] = [{"sku": "TEE", "qty": 1}] * MAX_LINES  # the bound itself is fine
    status, answer = await post_events(api, event)
    assert status == 202, answer
    assert await redis.xlen(STREAM) == 1


async def test_the_ceiling_itself_is_accepted(api: aiohttp.ClientSession) -> None:
    status, answer = await post_events(api, adjusted(delta=MAX_QUANTITY))
    assert status == 202, answer


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"id": "e", "type": "order.created", "channel": "web", "order_id": "1", '
        b'"lines": [{"sku": "T", "qty": 1}], "ship_to": {"x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}",
    ],
    ids=["deep list", "deep unknown field"],
)
async def test_deep_json_is_a_400_not_a_500(
    api: aiohttp.ClientSession, redis: aioredis.Redis, body: bytes
) -> None:
    status, answer = await post_events(api, body)
    assert status == 400, answer
    assert error_of(answer)[0] == "BAD_EVENT"
    assert await redis.xlen(STREAM) == 0


# --- the webhook path ---------------------------------------------------------------------------


async def test_a_deep_signed_webhook_is_a_400_not_a_500(
    api: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    """The measured hole: a 100,000-deep body gave a 500 with a traceback."""
    body = b"[" * 100_000 + b"]" * 100_000
    status, answer, _ = await call(api, "POST", "/webhooks/portal", data=body,
                                   headers=signed(body))
    assert status == 400, answer
    code, message = error_of(answer)
    assert code == "BAD_WEBHOOK"
    assert "nested too deeply" in message
    assert await redis.xlen(STREAM) == 0


async def test_a_partner_cannot_rewrite_our_stock(
    api: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    """The measured hole: a signed ``stock.counted 0`` and ``stock.adjusted -999999999999``
    from the wholesale partner were applied. Refused whole (the order beside them too)."""
    body = portal_body(
        {"id": "p-1", "type": "order.cancelled", "order_id": "77"},
        {"id": "p-2", "type": "stock.counted", "location": "wh-east", "sku": "TEE",
         "on_hand": 0},
    )
    status, answer, _ = await call(api, "POST", "/webhooks/portal", data=body,
                                   headers=signed(body))
    assert status == 400, answer
    code, message = error_of(answer)
    assert code == "BAD_WEBHOOK"
    assert "stock.counted is not accepted from channel 'portal'" in message
    body = portal_body(
        {"id": "p-3", "type": "stock.adjusted", "location": "wh-east", "sku": "TEE",
         "delta": -999_999_999},
    )
    status, answer, _ = await call(api, "POST", "/webhooks/portal", data=body,
                                   headers=signed(body))
    assert (status, error_of(answer)[0]) == (400, "BAD_WEBHOOK")
    # An order naming another channel is refused too.
    body = portal_body({"id": "p-4", "type": "order.cancelled", "channel": "web",
                        "order_id": "77"})
    status, answer, _ = await call(api, "POST", "/webhooks/portal", data=body,
                                   headers=signed(body))
    assert status == 400, answer
    assert "'web' is not this webhook's channel 'portal'" in error_of(answer)[1]
    assert await redis.xlen(STREAM) == 0


async def test_a_held_back_channel_answers_its_webhooks_503_naming_the_credential(
    ctx: ApiContext, api: aiohttp.ClientSession  # noqa: F811
) -> None:
    """The measured hole: with its token unset, Shopify's webhooks got 404."""
    reason = "channel 'web': token_env: environment variable INVSYNC_SHOPIFY_TOKEN is not set"
    ctx.unavailable["web"] = reason
    status, answer, _ = await call(api, "POST", "/webhooks/web", data=b"{}")
    assert status == 503, answer
    code, message = error_of(answer)
    assert code == "CHANNEL_UNAVAILABLE"
    assert "INVSYNC_SHOPIFY_TOKEN" in message
    # A channel nobody configured is still a 404.
    status, answer, _ = await call(api, "POST", "/webhooks/etsy", data=b"{}")
    assert (status, error_of(answer)[0]) == (404, "UNKNOWN_CHANNEL")


# --- every endpoint caps its body ----------------------------------------------------------------

CAPPED = ["/v1/exceptions/exc-1/resolve", "/v1/channels/web/drift-check"]


@pytest.mark.parametrize("path", CAPPED)
async def test_small_request_bodies_are_capped(api: aiohttp.ClientSession, path: str) -> None:
    """The measured hole: 10 MB was read whole on these routes."""
    big = b'{"note": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    status, answer, _ = await call(api, "POST", path, data=big)
    assert (status, error_of(answer)[0]) == (413, "PAYLOAD_TOO_LARGE")
    assert str(MAX_SMALL_BODY) in error_of(answer)[1]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(40):
            yield b" " * 4096

    status, answer, _ = await call(api, "POST", path, data=chunks())
    assert (status, error_of(answer)[0]) == (413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize("path", CAPPED)
async def test_deep_json_on_small_routes_is_a_400(api: aiohttp.ClientSession, path: str) -> None:
    body = b'{"x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"  # under the cap
    status, answer, _ = await call(api, "POST", path, data=body)
    assert status == 400, answer
    assert "nested too deeply" in error_of(answer)[1] or "unknown field" in error_of(answer)[1]


# --- MQTT intake: the same rules ----------------------------------------------------------------


def test_mqtt_messages_follow_the_same_rules() -> None:
    """The MQTT intake decodes through core/events.py too: deep JSON is a refusal (BadEvent,
    a ``bad_event`` incident), not an error that would end the intake task."""
    from invsync.core.events import BadEvent
    from invsync.daemon.mqtt_intake import events_from_message

    def accept(events: list[Any]) -> None:
        return None

    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(BadEvent, match="nested too deeply"):
        events_from_message("invsync/in/stock/wh-east", deep, "invsync/", accept)
    zero = b'{"id": "m-1", "type": "stock.adjusted", "sku": "TEE", "delta": 0}'
    with pytest.raises(BadEvent, match="delta must not be 0"):
        events_from_message("invsync/in/stock/wh-east", zero, "invsync/", accept)
    newline = b'{"id": "m-2", "type": "order.cancelled", "order_id": "ORD-NL\\n"}'
    with pytest.raises(BadEvent, match="order_id"):
        events_from_message("invsync/in/orders/web", newline, "invsync/", accept)
