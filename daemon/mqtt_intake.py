"""MQTT intake: WMS and POS stock movements and orders arrive on ``<prefix>in/...`` topics.

- ``<prefix>in/stock/{location}``: stock events (``stock.counted`` / ``stock.adjusted``); the
  topic's location fills in a missing ``location``.
- ``<prefix>in/orders/{channel}``: order events; the topic's channel fills in ``channel``.

The payload is one generic event object or a list (the same JSON as ``POST /v1/events``).
Messages are QoS 1 on a persistent session and acknowledged (PUBACK) only after the events are
recorded in the intake stream, so a crash before that makes the broker deliver them again. The
connection is re-established with exponential backoff when the broker goes away (``RECONNECT``),
and a store that does not answer is retried (``STORE_RETRY``) before the message is acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import urlsplit

import aiomqtt
import structlog

from ..core.clock import Clock, SystemClock
from ..core.config import Config, resolve_secret
from ..core.errors import StoreUnavailable
from ..core.events import BadEvent, Event, convert_events, event_kind, parse_json
from ..core.retry import Backoff
from ..metrics import definitions as m
from .intake import Intake

log = structlog.get_logger("invsync.mqtt")

#: (topic, raw payload, why it was refused): told of every refused message.
OnBad = Callable[[str, bytes, str], Awaitable[None]]


_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}

#: Reconnects to the broker: 0.5 s doubling to 30 s, equal jitter (each pause drawn from
#: [ceiling/2, ceiling]) so daemons that lost the broker together do not all come back at once.
RECONNECT = Backoff(0.5, 30.0, jitter="equal")

#: Re-recording a message while the store does not answer: 0.2 s doubling to 5 s, no jitter (the
#: message is held, unacknowledged, meanwhile; one message at a time, nothing to spread).
STORE_RETRY = Backoff(0.2, 5.0, jitter="none")


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of an ``mqtt://``, ``mqtts://``, ``ws://`` or ``wss://`` URL."""
    parts = urlsplit(url)
    tls = parts.scheme in ("mqtts", "wss")
    return parts.hostname or "127.0.0.1", parts.port or _DEFAULT_PORTS.get(parts.scheme, 1883), tls


def broker_transport(url: str) -> tuple[Literal["tcp", "websockets"], str | None]:
    """aiomqtt's transport and websocket path (``/mqtt`` unless the URL has one) for a URL."""
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return "websockets", parts.path or "/mqtt"
    return "tcp", None


def events_from_message(
    topic: str, payload: bytes, prefix: str, check: Callable[[list[Event]], None]
) -> list[Event]:
    """Decode a message into events, filling location/channel from the topic; BadEvent if bad."""
    rest = topic[len(prefix) :] if topic.startswith(prefix) else topic
    parts = rest.split("/")
    if len(parts) != 3 or parts[0] != "in" or parts[1] not in ("stock", "orders") or not parts[2]:
        raise BadEvent(
            f"unknown topic {topic!r}: use {prefix}in/stock/<location> or "
            f"{prefix}in/orders/<channel>"
        )
    decoded = parse_json(payload)  # BadEvent also for JSON nested too deeply (not a crash)
    objects = decoded if isinstance(decoded, list) else [decoded]
    if not objects or not all(isinstance(o, dict) for o in objects):
        raise BadEvent("payload must be an event object or a non-empty list of them")
    field = "location" if parts[1] == "stock" else "channel"
    stock_topic = parts[1] == "stock"
    wrong = [
        o.get("id") for o in objects if stock_topic != str(o.get("type", "")).startswith("stock.")
    ]
    if wrong:
        raise BadEvent(f"events {wrong} do not belong on {topic}")
    for obj in objects:
        obj.setdefault(field, parts[2])
        if obj[field] != parts[2]:
            raise BadEvent(f"{field} {obj[field]!r} does not match the topic's {parts[2]!r}")
    events = convert_events(objects)
    check(events)
    return events


async def run_mqtt_intake(
    config: Callable[[], Config],
    intake: Intake,
    check: Callable[[list[Event]], None],
    *,
    connected: asyncio.Event | None = None,
    on_bad: OnBad | None = None,
    clock: Clock | None = None,
) -> None:
    """Subscribe and record events until cancelled; reconnects with backoff forever.

    ``on_bad(topic, payload, error)`` is told of each refused message (the daemon turns it into
    a ``bad_event`` exception); its own failures are logged, never block the intake. The
    pauses between reconnects and store retries are slept on ``clock``.
    """
    clock = clock or SystemClock()
    failures = 0  # consecutive failed connections
    while True:
        cfg = config().mqtt
        if cfg.url is None:
            return
        host, port, tls = broker_address(cfg.url)
        transport, ws_path = broker_transport(cfg.url)
        prefix = cfg.prefix
        try:
            client = aiomqtt.Client(
                host,
                port,
                identifier=f"{cfg.client_id}-intake",
                username=cfg.username,
                password=resolve_secret(cfg.password_env),
                clean_session=False,  # the broker keeps our QoS 1 messages while we are away
                tls_params=aiomqtt.TLSParameters() if tls else None,
                transport=transport,
                websocket_path=ws_path,
            )
            # PUBACK only after the events are recorded (paho's manual acknowledgement).
            paho = client._client
            paho.manual_ack_set(True)
            async with client:
                await client.subscribe(f"{prefix}in/#", qos=1)
                log.info("mqtt_intake_connected", broker=f"{host}:{port}")
                if connected is not None:
                    connected.set()
                failures = 0
                async for message in client.messages:
                    await _handle(message, prefix, intake, check, on_bad, clock)
                    if message.qos > 0:
                        paho.ack(message.mid, message.qos)
        except aiomqtt.MqttError as exc:
            if connected is not None:
                connected.clear()
            delay = RECONNECT.delay(failures)
            failures += 1
            log.warning("mqtt_intake_disconnected", error=str(exc), retry_in_s=round(delay, 2))
            await clock.sleep(delay)


async def _handle(
    message: aiomqtt.Message,
    prefix: str,
    intake: Intake,
    check: Callable[[list[Event]], None],
    on_bad: OnBad | None,
    clock: Clock,
) -> None:
    topic = str(message.topic)
    raw = message.payload
    payload = raw if isinstance(raw, bytes) else str(raw).encode()
    try:
        events = events_from_message(topic, payload, prefix, check)
    except BadEvent as exc:
        # Acknowledged anyway: a malformed message would come back forever. Logged and counted.
        m.EVENTS.labels(kind="mqtt", outcome="rejected").inc()
        log.warning("mqtt_bad_event", topic=topic, error=str(exc))
        if on_bad is not None:
            try:
                await on_bad(topic, payload, str(exc))
            except Exception as report_exc:
                log.warning("mqtt_bad_event_not_recorded", topic=topic, error=str(report_exc))
        return
    failures = 0
    while True:
        try:
            await intake.append(events, source="mqtt")
            break
        except StoreUnavailable as exc:
            # Not acknowledged until recorded: keep the message (and the broker's redelivery).
            delay = STORE_RETRY.delay(failures)
            failures += 1
            log.warning("mqtt_store_unavailable", error=exc.message, retry_in_s=delay)
            await clock.sleep(delay)
    for event in events:
        m.EVENTS.labels(kind=event_kind(event), outcome="accepted").inc()
