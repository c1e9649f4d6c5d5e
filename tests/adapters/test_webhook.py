"""The generic signed webhook channel against a real HTTP receiver on loopback.

``Receiver`` (``tests/receiver.py``) is a small aiohttp.web app on 127.0.0.1 that verifies the
signature of every request, records it, and answers as told: 2xx, 429 with Retry-After, 5xx, a
hang, or per-SKU results. The channel actor and daemon tests use it too.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import structlog
import structlog.testing

from invsync.adapters.base import (
    AdapterContext,
    BadWebhook,
    Permanent,
    Retryable,
    Throttled,
    Update,
)
from invsync.adapters.registry import ADAPTER_MODULES, MissingSecret, make_adapter, options_type
from invsync.adapters.signing import SIGNATURE_HEADER, sign, verify
from invsync.adapters.webhook import Options, WebhookAdapter, parse_retry_after
from invsync.core.config import Channel
from invsync.core.events import (
    BadEvent,
    OrderCancelled,
    OrderFulfilled,
    StockAdjusted,
)
from tests.adapters.channel_config import load_channel, refused
from tests.receiver import SECRET, Answer, Receiver


def webhook_channel(url: str, **overrides: Any) -> Channel:
    """A webhook channel pointed at ``url`` (fast limits unless overridden)."""
    fields: dict[str, Any] = {
        "id": "wholesale",
        "kind": "webhook",
        "url": url,
        "secret_env": "WHOLESALE_SECRET",
        "rate_limit_per_s": 1000.0,
        "batch_size": 50,
    }
    fields.update(overrides)
    return Channel(**fields)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def adapter(receiver: Receiver, session: aiohttp.ClientSession) -> WebhookAdapter:
    return WebhookAdapter(webhook_channel(receiver.url), session, SECRET)


UPDATES = [
    Update(sku="TEE-BLK-M", available=7, version=3),
    Update(sku="TEE-BLK-L", available=0, version=12),
]


# --- push -----------------------------------------------------------------------------------


async def test_push_posts_the_spec_payload_signed(
    adapter: WebhookAdapter, receiver: Receiver
) -> None:
    results = await adapter.push(UPDATES)

    assert [r.outcome for r in results] == ["ok", "ok"]
    assert [r.sku for r in results] == ["TEE-BLK-M", "TEE-BLK-L"]
    (req,) = receiver.requests
    assert req.signature_ok
    assert req.payload == {
        "channel": "wholesale",
        "updates": [
            {"sku": "TEE-BLK-M", "available": 7, "version": 3},
            {"sku": "TEE-BLK-L", "available": 0, "version": 12},
        ],
    }


async def test_receiver_refuses_a_wrong_secret(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    forged = WebhookAdapter(webhook_channel(receiver.url), session, "not-the-secret")
    with pytest.raises(Permanent, match="401"):
        await forged.push(UPDATES)
    assert receiver.requests == []


async def test_429_is_throttled_with_retry_after_seconds(
    adapter: WebhookAdapter, receiver: Receiver
) -> None:
    receiver.answer(Answer(status=429, headers={"Retry-After": "3"}))
    with pytest.raises(Throttled) as caught:
        await adapter.push(UPDATES)
    assert caught.value.retry_after == 3.0


async def test_429_is_throttled_with_retry_after_http_date(
    adapter: WebhookAdapter, receiver: Receiver
) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    receiver.answer(Answer(status=429, headers={"Retry-After": when}))
    with pytest.raises(Throttled) as caught:
        await adapter.push(UPDATES)
    assert caught.value.retry_after is not None
    assert 27 <= caught.value.retry_after <= 31


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retryable(
    adapter: WebhookAdapter, receiver: Receiver, status: int
) -> None:
    receiver.answer(Answer(status=status, headers={"Retry-After": "2"}))
    with pytest.raises(Retryable) as caught:
        await adapter.push(UPDATES)
    assert caught.value.retry_after == 2.0
    assert str(status) in caught.value.message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 301])
async def test_other_client_errors_are_permanent(
    adapter: WebhookAdapter, receiver: Receiver, status: int
) -> None:
    receiver.answer(Answer(status=status, body={"error": "nope"}, headers={"Location": "/x"}))
    with pytest.raises(Permanent):
        await adapter.push(UPDATES)


async def test_a_hung_receiver_times_out_as_retryable(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    adapter = WebhookAdapter(
        webhook_channel(receiver.url, options={"timeout_s": 0.2}), session, SECRET
    )
    receiver.answer(Answer(hang=True))
    started = time.monotonic()
    with pytest.raises(Retryable, match="no answer"):
        await adapter.push(UPDATES)
    assert time.monotonic() - started < 2


async def test_connection_refused_is_retryable(session: aiohttp.ClientSession) -> None:
    async with Receiver() as gone:
        url = gone.url  # a port nobody listens on once the receiver is closed
    adapter = WebhookAdapter(webhook_channel(url), session, SECRET)
    with pytest.raises(Retryable):
        await adapter.push(UPDATES)


async def test_per_sku_results_fail_only_the_named_skus(
    adapter: WebhookAdapter, receiver: Receiver
) -> None:
    receiver.answer(
        Answer(
            body={
                "results": [
                    {"sku": "TEE-BLK-M", "status": "ok"},
                    {"sku": "TEE-BLK-L", "status": "error", "retryable": True, "error": "locked"},
                ]
            }
        ),
        Answer(body={"results": [{"sku": "TEE-BLK-M", "status": "error", "retryable": False}]}),
    )
    first = await adapter.push(UPDATES)
    second = await adapter.push(UPDATES)

    assert [(r.sku, r.outcome) for r in first] == [("TEE-BLK-M", "ok"), ("TEE-BLK-L", "retryable")]
    assert first[1].error == "locked"
    assert [(r.sku, r.outcome) for r in second] == [
        ("TEE-BLK-M", "permanent"),
        ("TEE-BLK-L", "ok"),  # not mentioned: the 2xx acknowledges it
    ]


async def test_a_2xx_without_results_acknowledges_the_batch(
    adapter: WebhookAdapter, receiver: Receiver
) -> None:
    receiver.answer(Answer(status=204), Answer(body="OK"), Answer(body={"accepted": 2}))
    for _ in range(3):
        assert [r.outcome for r in await adapter.push(UPDATES)] == ["ok", "ok"]


def test_timeout_option_must_be_a_positive_number(session: aiohttp.ClientSession) -> None:
    for bad in (0, -1, "10", True):
        with pytest.raises(ValueError, match="timeout_s"):
            WebhookAdapter(webhook_channel("http://x", options={"timeout_s": bad}), session, "k")


def test_parse_retry_after() -> None:
    assert parse_retry_after("0.3") == 0.3
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    now = 1_800_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now=now) == 10.0
    assert parse_retry_after(email.utils.formatdate(now - 10, usegmt=True), now=now) == 0.0


# --- inbound webhooks ---------------------------------------------------------------------


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}


def test_parse_webhook_accepts_one_signed_event_and_defaults_the_channel(
    adapter: WebhookAdapter,
) -> None:
    body = b'{"id": "evt-1", "type": "order.cancelled", "order_id": "1001"}'
    assert adapter.parse_webhook(_signed(body), body) == [
        OrderCancelled(id="evt-1", order_id="1001", channel="wholesale")
    ]


def stock_partner(
    receiver: Receiver, session: aiohttp.ClientSession, **options: Any
) -> WebhookAdapter:
    """A webhook adapter whose options allow some stock events (``accept_stock`` ...)."""
    return WebhookAdapter(webhook_channel(receiver.url, options=options), session, SECRET)


def test_parse_webhook_accepts_a_list_and_any_header_case(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    adapter = stock_partner(
        receiver, session, accept_stock=["stock.adjusted"], stock_locations=["wh-east"]
    )
    body = (
        b'[{"id": "a", "type": "order.cancelled", "channel": "wholesale", "order_id": "1"},'
        b' {"id": "b", "type": "order.fulfilled", "order_id": "2"},'
        b' {"id": "c", "type": "stock.adjusted", "location": "wh-east", "sku": "A", "delta": 3}]'
    )
    headers = {SIGNATURE_HEADER.lower(): sign(SECRET, body).upper()}
    events = adapter.parse_webhook(headers, body)
    assert events == [
        OrderCancelled(id="a", channel="wholesale", order_id="1"),
        OrderFulfilled(id="b", channel="wholesale", order_id="2"),
        StockAdjusted(id="c", location="wh-east", sku="A", delta=3),  # names no channel
    ]


def test_parse_webhook_refuses_a_signed_object_that_is_no_event(adapter: WebhookAdapter) -> None:
    body = b'[{"id": "a", "type": "order.cancelled", "order_id": "1"}, {"id": "b"}]'
    with pytest.raises(BadEvent, match=r"\$\[1\]"):
        adapter.parse_webhook(_signed(body), body)


def test_parse_webhook_refuses_a_forged_signature(adapter: WebhookAdapter) -> None:
    body = b'{"id": "evt-1", "type": "order.cancelled"}'
    with pytest.raises(BadWebhook) as caught:
        adapter.parse_webhook(_signed(body, secret="guess"), body)
    assert caught.value.unauthorized
    tampered = body.replace(b"cancelled", b"created")
    with pytest.raises(BadWebhook) as caught:
        adapter.parse_webhook(_signed(body), tampered)
    assert caught.value.unauthorized


def test_parse_webhook_refuses_a_missing_signature(adapter: WebhookAdapter) -> None:
    body = b'{"id": "evt-1"}'
    with pytest.raises(BadWebhook, match=SIGNATURE_HEADER) as caught:
        adapter.parse_webhook({"Content-Type": "application/json"}, body)
    assert caught.value.unauthorized


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b'"a string"', b"[1, 2]", b'[{"id": "a"}, 3]', b"\xff\xfe"],
)
def test_parse_webhook_refuses_malformed_json(adapter: WebhookAdapter, body: bytes) -> None:
    with pytest.raises(BadWebhook) as caught:
        adapter.parse_webhook(_signed(body), body)
    assert not caught.value.unauthorized


def test_parse_webhook_refuses_an_event_for_another_channel(adapter: WebhookAdapter) -> None:
    body = b'{"id": "evt-1", "channel": "shopify"}'
    with pytest.raises(BadWebhook, match="shopify"):
        adapter.parse_webhook(_signed(body), body)
    body = b'{"id": "evt-1", "type": "order.cancelled", "channel": "shopify", "order_id": "9"}'
    with pytest.raises(BadWebhook, match="'shopify' is not this webhook's channel"):
        adapter.parse_webhook(_signed(body), body)


# --- partners report orders, not our stock (issue 12) -----------------------------------------

ZERO_COUNT = (
    b'{"id": "p-1", "type": "stock.counted", "location": "wh-east", "sku": "A", "on_hand": 0}'
)
HUGE_ADJUST = (
    b'{"id": "p-2", "type": "stock.adjusted", "location": "wh-east", "sku": "A",'
    b' "delta": -999999999}'
)


@pytest.mark.parametrize("body", [ZERO_COUNT, HUGE_ADJUST])
def test_a_partner_cannot_send_stock_events_by_default(
    adapter: WebhookAdapter, body: bytes
) -> None:
    """The measured hole: a signed ``stock.counted 0`` or ``stock.adjusted`` was applied."""
    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(BadWebhook, match="not accepted from channel 'wholesale'") as caught,
    ):
        adapter.parse_webhook(_signed(body), body)
    assert not caught.value.unauthorized
    assert "accept_stock allows: none" in caught.value.message
    (logged,) = [e for e in logs if e["event"] == "webhook_event_refused"]
    assert logged["channel"] == "wholesale"
    assert logged["event_type"].startswith("stock.")


def test_one_refused_event_refuses_the_whole_batch(adapter: WebhookAdapter) -> None:
    body = b'[{"id": "a", "type": "order.cancelled", "order_id": "1"}, ' + ZERO_COUNT + b"]"
    with pytest.raises(BadWebhook, match=r"\[1\].*nothing of this webhook was recorded"):
        adapter.parse_webhook(_signed(body), body)


def test_a_hold_event_is_refused(adapter: WebhookAdapter) -> None:
    body = b'{"id": "h", "type": "hold.released", "hold_id": "chk-1"}'
    with pytest.raises(BadWebhook, match=r"hold\.released is not accepted"):
        adapter.parse_webhook(_signed(body), body)


def test_allowed_stock_events_only_at_allowed_locations(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    adapter = stock_partner(
        receiver, session, accept_stock=["stock.adjusted"], stock_locations=["wh-east"]
    )
    allowed = (
        b'{"id": "a", "type": "stock.adjusted", "location": "wh-east", "sku": "A", "delta": 4}'
    )
    assert adapter.parse_webhook(_signed(allowed), allowed) == [
        StockAdjusted(id="a", location="wh-east", sku="A", delta=4)
    ]
    elsewhere = allowed.replace(b"wh-east", b"wh-west")
    with pytest.raises(BadWebhook, match="location 'wh-west' is not accepted"):
        adapter.parse_webhook(_signed(elsewhere), elsewhere)
    with pytest.raises(BadWebhook, match=r"stock\.counted is not accepted"):
        adapter.parse_webhook(_signed(ZERO_COUNT), ZERO_COUNT)


def test_a_deeply_nested_body_is_a_bad_webhook_not_a_crash(adapter: WebhookAdapter) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(BadWebhook, match="nested too deeply") as caught:
        adapter.parse_webhook(_signed(body), body)
    assert not caught.value.unauthorized


@pytest.mark.parametrize(
    ("options", "key", "message"),
    [
        ('accept_stock = ["stock.adjusted"]', "", "needs stock_locations"),
        ('stock_locations = ["wh-east"]', "", "allows nothing"),
        ('accept_stock = ["stock.moved"], stock_locations = ["wh-east"]', ".accept_stock[0]", ""),
        (
            'accept_stock = ["stock.counted"], stock_locations = ["wh-north"]',
            ".stock_locations[0]",
            "unknown location 'wh-north'",
        ),
    ],
)
def test_stock_options_are_checked_at_load(
    tmp_path: Path, options: str, key: str, message: str
) -> None:
    error = refused(tmp_path, "webhook", options, extra=WEBHOOK)
    assert error.key == f"channels[0].options{key}"
    assert message in error.message


def test_stock_options_load(tmp_path: Path) -> None:
    channel = load_channel(
        tmp_path,
        "webhook",
        'accept_stock = ["stock.adjusted", "stock.counted"], stock_locations = ["store-1"]',
        extra=WEBHOOK,
    )
    options = msgspec.convert(channel.options, Options)
    assert options.accept_stock == ("stock.adjusted", "stock.counted")
    assert options.stock_locations == ("store-1",)


# --- signing and the registry -------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    body = b'{"channel":"x","updates":[]}'
    signature = sign(SECRET, body)
    assert len(signature) == 64 and int(signature, 16) >= 0
    assert verify(SECRET, body, signature)
    assert verify(SECRET.encode(), body, signature.upper())
    assert not verify(SECRET, body + b" ", signature)
    assert not verify("other", body, signature)
    assert not verify(SECRET, body, None)
    assert not verify(SECRET, body, "")
    assert not verify(SECRET, body, "é" * 64)


def test_make_adapter_builds_a_webhook_adapter_with_the_named_secret(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHOLESALE_SECRET", SECRET)
    ctx = AdapterContext(session=session)
    adapter = make_adapter(webhook_channel("http://127.0.0.1:9/push"), ctx)
    assert isinstance(adapter, WebhookAdapter)


def test_make_adapter_names_a_missing_secret_variable(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WHOLESALE_SECRET", raising=False)
    with pytest.raises(MissingSecret, match="WHOLESALE_SECRET") as caught:
        make_adapter(webhook_channel("http://127.0.0.1:9/push"), AdapterContext(session=session))
    assert isinstance(caught.value, ValueError)
    assert "wholesale" in str(caught.value)


def test_make_adapter_has_nothing_for_a_kind_without_an_adapter(
    session: aiohttp.ClientSession,
) -> None:
    channel = Channel(id="till", kind="pos", url="https://example.com")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ADAPTER_MODULES, "pos", "no_such_module")
        assert make_adapter(channel, AdapterContext(session=session)) is None


# --- options, checked when the config is loaded ---------------------------------------------

WEBHOOK = 'url = "http://127.0.0.1:9/push"\nsecret_env = "WHOLESALE_SECRET"\n'


def test_the_registry_names_the_webhook_options() -> None:
    assert options_type("webhook") is Options


def test_good_options_load(tmp_path: Path) -> None:
    channel = load_channel(tmp_path, "webhook", "timeout_s = 2.5", extra=WEBHOOK)
    assert msgspec.convert(channel.options, Options).timeout_s == 2.5
    default = load_channel(tmp_path, "webhook", "", extra=WEBHOOK)
    assert msgspec.convert(default.options, Options).timeout_s == 10


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ('timeout_s = "10"', "timeout_s"),  # wrong type
        ("timeout_s = true", "timeout_s"),
        ("timeout_s = 0", "timeout_s"),  # out of range
        ("timeout_s = -1", "timeout_s"),
        ("timeout_s = inf", "timeout_s"),
        ("timeout = 5", "timeout"),  # unknown key
    ],
)
def test_a_bad_option_is_refused_at_load_naming_its_key(
    tmp_path: Path, options: str, key: str
) -> None:
    assert refused(tmp_path, "webhook", options, extra=WEBHOOK).key == f"channels[0].options.{key}"
