"""Availability on retained MQTT topics for POS and store systems (kinds ``mqtt``, ``pos``).

Spec, "Interfaces": out ``{prefix}availability/{channel}/{sku}`` (retained, with version), where
``{prefix}`` is ``[mqtt] prefix`` (``invsync/``). Each update is one PUBLISH with the RETAIN flag
at QoS 1 and the JSON payload ``{"sku", "channel", "available", "version", "ts"}`` (``ts``: epoch
milliseconds). The broker keeps the last retained message per topic and hands it to every client
that subscribes later, so a till that boots at 9:00 sees the current figure at once.

- Broker: the channel's ``url`` when it is ``mqtt[s]://`` or ``ws[s]://`` (password from the
  channel's ``token_env``, username from the url or ``options.username``), else ``[mqtt]`` (its
  ``username`` / ``password_env``). Client ids ``{[mqtt] client_id}-avail-{channel id}`` (the
  kept connection) and ``...-read-{channel id}`` (read-backs): a broker disconnects the older of
  two clients with one id, and these never equal the intake's ``{client_id}-intake`` nor each
  other, whatever the channel ids.
- An update is ``ok`` only once the broker acknowledged it (PUBACK), each publish bounded by
  ``options.timeout_s`` (default 10). The connection is opened on the first push and kept; a
  refused connection raises ``Retryable`` for the batch (bad credentials: ``Unauthorized``), and
  a connection lost mid-batch makes the unacknowledged SKUs ``retryable``; the next push connects
  again. A SKU that cannot be part of a topic name (``+``, ``#``, NUL, an empty level) is
  ``permanent``.
- ``read_back`` subscribes to the SKUs' topics on a short-lived connection and reads the retained
  messages the broker holds (which a POS or a stale publisher may have overwritten), waiting until
  every SKU answered or nothing arrived for ``options.read_back_wait_s`` (default 0.5) s.

Followed:
- MQTT 3.1.1 (OASIS), http://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html:
  3.1.3.1 (client identifier; a second connection with the same id takes over), 3.2.2.3
  (CONNACK return codes), 3.3.1.3 (RETAIN: stored per topic, sent to new subscriptions with the
  flag set; a zero-byte retained message clears the topic), 4.3.2 (QoS 1 and PUBACK), 4.7 (topic
  names: no wildcards, no NUL, at most 65535 UTF-8 bytes).
- aiomqtt 2.x (https://github.com/empicano/aiomqtt, ``aiomqtt/client.py``): the client is a
  reusable async context manager; ``publish(qos=1)`` waits for the PUBACK, ``subscribe`` for the
  SUBACK; ``messages`` iterates received messages; failures are ``MqttError``.
- paho-mqtt 2.x ``ReasonCode`` (CONNACK codes 4/5 become 134 "Bad user name or password" and
  135 "Not authorized").
- mosquitto_pub(1) / mosquitto_sub(1), https://mosquitto.org/man/ (``-r -n`` clears a retained
  topic; ``-v`` prints topics), for the onboarding page ``docs/channels/mqtt.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import aiomqtt
import msgspec
import structlog
from aiomqtt.exceptions import MqttConnectError

from ..core.config import Channel, MqttConfig, resolve_secret
from .base import (
    AdapterContext,
    BaseAdapter,
    ChannelError,
    Permanent,
    PushResult,
    Retryable,
    Unauthorized,
    Update,
    results_for,
)
from .options import NonEmpty, Seconds, Timeout, parse_options, require_env
from .registry import MissingSecret

__all__ = [
    "DEFAULT_READ_BACK_WAIT_S",
    "Availability",
    "Broker",
    "MqttAvailabilityAdapter",
    "Options",
    "broker_for",
    "create",
    "topic_problem",
]

log = structlog.get_logger("invsync.mqtt")

DEFAULT_READ_BACK_WAIT_S = 0.5
#: Topics per SUBSCRIBE packet of a read-back (the drift check asks for 100 SKUs at a time).
_SUBSCRIBE_CHUNK = 100
#: The broker URL schemes ``[mqtt] url`` accepts, with their default ports.
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
_WEBSOCKET_PATH = "/mqtt"  # paho-mqtt's default, and what most brokers serve
_MAX_TOPIC_BYTES = 65535
# CONNACK codes: MQTT 3.1.1 return codes and the reason codes paho-mqtt 2 turns them into.
_BAD_CREDENTIALS = frozenset({4, 5, 134, 135})  # bad user name or password, not authorized
_BROKER_BUSY = frozenset({3, 136, 137, 159})  # server unavailable, busy, connection rate exceeded
_SUBACK_FAILURE = 0x80


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kinds ``mqtt`` and ``pos`` (docs/channels/mqtt.md)."""

    #: User name for the channel's own broker, when it is not in the url (unused with [mqtt]).
    username: NonEmpty | None = None
    #: Longest wait for each PUBACK, for the CONNACK and for the TCP connect.
    timeout_s: Timeout = 10.0
    #: How long a read-back waits with nothing arriving before the SKUs that have not answered
    #: count as having no retained value.
    read_back_wait_s: Seconds = DEFAULT_READ_BACK_WAIT_S


class Availability(msgspec.Struct, frozen=True, kw_only=True):
    """The retained payload of ``{prefix}availability/{channel}/{sku}``."""

    sku: str
    channel: str
    available: int
    version: int
    ts: int  # epoch milliseconds of the publish


class _Retained(msgspec.Struct, kw_only=True):
    """What a read-back needs from a retained payload: other publishers may write less."""

    available: int


_encode = msgspec.json.Encoder().encode
_retained_decoder = msgspec.json.Decoder(_Retained | int)


@dataclass(frozen=True, kw_only=True)
class Broker:
    """Where and as whom the adapter connects; ``prefix`` ends with ``/``."""

    scheme: str  # mqtt, mqtts (TLS), ws, wss (MQTT over websockets, wss with TLS)
    host: str
    port: int
    path: str  # the websocket path; "" for mqtt:// and mqtts://
    prefix: str
    client_id: str  # of the kept publishing connection
    read_client_id: str  # of read-back connections
    username: str | None = None
    password: str | None = None

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted."""
        return self.scheme in ("mqtts", "wss")

    @property
    def transport(self) -> Literal["tcp", "websockets"]:
        """aiomqtt's transport for the scheme."""
        return "websockets" if self.scheme in ("ws", "wss") else "tcp"

    @property
    def address(self) -> str:
        """``scheme://host:port[/path]`` for messages (never the credentials)."""
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"


def broker_for(channel: Channel, mqtt: MqttConfig | None, options: Options | None = None) -> Broker:
    """The channel's broker: its own ``mqtt[s]://`` / ``ws[s]://`` url, else ``[mqtt]``.

    ValueError naming what to set when neither is configured; MissingSecret when a named
    password variable is unset. ``options`` are the channel's (parsed here when left out).
    """
    options = options or parse_options(channel, Options)
    daemon = mqtt or MqttConfig()
    url = channel.url
    username: str | None
    password: str | None = None
    if url is not None and urlsplit(url).scheme in _DEFAULT_PORTS:
        broker_url, key = url, "url"
        username = urlsplit(url).username or options.username
        if channel.token_env is not None:
            password = require_env(channel.id, "token_env", channel.token_env)
    elif daemon.url is not None:
        broker_url, key = daemon.url, "[mqtt] url"
        username = daemon.username
        if daemon.password_env is not None:
            password = resolve_secret(daemon.password_env)
            if password is None:
                raise MissingSecret(channel.id, "mqtt.password_env", daemon.password_env)
    else:
        other = f" (its url {url!r} is not mqtt://, mqtts://, ws:// or wss://)" if url else ""
        raise ValueError(
            f"channel '{channel.id}': kind '{channel.kind}' needs an MQTT broker{other}: set "
            "[mqtt] url, or the channel's url to mqtt://host:port"
        )
    parts = urlsplit(broker_url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(
            f"channel '{channel.id}': {key} must be mqtt://, mqtts://, ws:// or wss://"
        )
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:  # a port that is not a number or out of range
        raise ValueError(f"channel '{channel.id}': {key}: {exc}") from None
    websockets = parts.scheme in ("ws", "wss")
    return Broker(
        scheme=parts.scheme,
        host=parts.hostname or "127.0.0.1",
        port=port,
        path=(parts.path or _WEBSOCKET_PATH) if websockets else "",
        prefix=daemon.prefix,
        client_id=f"{daemon.client_id}-avail-{channel.id}",
        read_client_id=f"{daemon.client_id}-read-{channel.id}",
        username=username,
        password=password,
    )


def topic_problem(sku: str) -> str | None:
    """Why ``sku`` cannot be the last part of a topic name, or None when it can."""
    if not sku:
        return "an empty SKU makes an empty topic level"
    if "+" in sku or "#" in sku:
        return f"SKU {sku!r} contains an MQTT wildcard ('+' or '#'), not allowed in a topic name"
    if "\x00" in sku:
        return f"SKU {sku!r} contains a NUL character, not allowed in a topic name"
    if "" in sku.split("/"):
        return f"SKU {sku!r} makes an empty topic level (a leading, trailing or double '/')"
    return None


def create(channel: Channel, ctx: AdapterContext) -> MqttAvailabilityAdapter:
    """The adapter for an ``mqtt`` or ``pos`` channel (its broker from the url or ``[mqtt]``)."""
    options = parse_options(channel, Options)
    return MqttAvailabilityAdapter(
        channel, broker_for(channel, ctx.mqtt, options), options=options, wall=ctx.wall
    )


class MqttAvailabilityAdapter(BaseAdapter):
    """Publishes availability as retained QoS 1 messages and reads the retained ones back.

    Owns one broker connection, opened by the first push and closed by ``aclose`` (idempotent;
    a later push opens a new one). Takes no inbound webhooks: MQTT intake is separate.
    ``options`` are the channel's (parsed here when left out).
    """

    def __init__(
        self,
        channel: Channel,
        broker: Broker,
        *,
        options: Options | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self.broker = broker
        self.options = options = options or parse_options(channel, Options)
        self._timeout_s = options.timeout_s
        self._read_wait_s = options.read_back_wait_s
        self._wall = wall
        self._log = log.bind(channel=channel.id, broker=broker.address)
        self._client: aiomqtt.Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()  # one push (or close) at a time on the one connection
        self._read_lock = asyncio.Lock()  # the read-back client id is used by one at a time

    def topic(self, sku: str) -> str:
        """The retained topic of ``sku`` on this channel."""
        return f"{self.broker.prefix}availability/{self.channel.id}/{sku}"

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Publish each update retained at QoS 1; ``ok`` once the broker acknowledged it.

        Raises Retryable when the broker cannot be reached or nothing was acknowledged,
        Unauthorized when it refuses our credentials.
        """
        failures: dict[str, PushResult] = {}
        valid: list[Update] = []
        for update in updates:
            problem = self._topic_problem(update.sku)
            if problem is None:
                valid.append(update)
            else:
                failures[update.sku] = PushResult(
                    sku=update.sku, outcome="permanent", error=problem
                )
        if not valid:
            return results_for(updates, failures)
        async with self._lock:
            client = await self._connection()
            ts = int(self._wall() * 1000)
            errors = await asyncio.gather(*(self._publish(client, u, ts) for u in valid))
            lost = {u.sku: e for u, e in zip(valid, errors, strict=True) if e is not None}
            if lost:
                # Whatever went wrong (connection lost, no PUBACK in time), start afresh next push.
                await self._disconnect()
        if lost:
            first = next(iter(lost.values()))
            self._log.warning("mqtt_publish_failed", skus=len(lost), error=first)
            if len(lost) == len(valid) and not failures:
                raise Retryable(f"MQTT broker {self.broker.address}: {first}")
            for sku, error in lost.items():
                failures[sku] = PushResult(sku=sku, outcome="retryable", error=error)
        return results_for(updates, failures)

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """SKU -> ``available`` of the retained message on its topic; SKUs without one are left
        out. Raises Retryable when the broker cannot be reached, Permanent when it refuses the
        subscription."""
        topics = {self.topic(s): s for s in dict.fromkeys(skus) if self._topic_problem(s) is None}
        if not topics:
            return {}
        found: dict[str, int] = {}
        async with self._read_lock:
            client = self._new_client(self.broker.read_client_id)
            try:
                async with client:
                    names = list(topics)
                    for start in range(0, len(names), _SUBSCRIBE_CHUNK):
                        chunk = names[start : start + _SUBSCRIBE_CHUNK]
                        granted = await client.subscribe([(t, 0) for t in chunk])
                        refused = [
                            t for t, code in zip(chunk, granted, strict=True) if _failed(code)
                        ]
                        if refused:
                            raise Permanent(
                                f"MQTT broker {self.broker.address} refused the subscription to "
                                f"{refused[0]} (check its ACL for this client)"
                            )
                    await self._collect(client, topics, found)
            except aiomqtt.MqttError as exc:
                raise self._connection_error(exc) from exc
        return found

    async def aclose(self) -> None:
        """Disconnect from the broker (after a push in progress); safe to call again."""
        async with self._lock:
            await self._disconnect()

    # --- internals ------------------------------------------------------------------------------

    def _topic_problem(self, sku: str) -> str | None:
        problem = topic_problem(sku)
        if problem is None and len(self.topic(sku).encode()) > _MAX_TOPIC_BYTES:
            problem = f"the topic of SKU {sku[:32]!r}... is longer than {_MAX_TOPIC_BYTES} bytes"
        return problem

    def _new_client(self, identifier: str) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=identifier,
            username=self.broker.username,
            password=self.broker.password,
            clean_session=True,  # nothing to resume: an unacknowledged update is pushed again
            timeout=self._timeout_s,  # CONNACK, SUBACK and DISCONNECT waits
            tls_params=aiomqtt.TLSParameters() if self.broker.tls else None,
            transport=self.broker.transport,
            websocket_path=self.broker.path or None,
        )
        # paho's TCP connect (in an executor thread) has its own timeout, 5 s by default.
        client._client.connect_timeout = self._timeout_s
        return client

    async def _connection(self) -> aiomqtt.Client:
        """The open connection, connecting first when there is none (caller holds the lock)."""
        if self._client is not None:
            return self._client
        client = self._new_client(self.broker.client_id)
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            raise self._connection_error(exc) from exc
        self._client, self._stack = client, stack
        self._log.info("mqtt_availability_connected", client_id=self.broker.client_id)
        return client

    async def _disconnect(self) -> None:
        stack, self._client, self._stack = self._stack, None, None
        if stack is None:
            return
        try:
            await stack.aclose()
        except aiomqtt.MqttError as exc:  # the broker is gone already: nothing left to release
            self._log.info("mqtt_availability_disconnect_failed", error=str(exc))

    async def _publish(self, client: aiomqtt.Client, update: Update, ts: int) -> str | None:
        """Publish one update; None once acknowledged, else what went wrong."""
        payload = _encode(
            Availability(
                sku=update.sku,
                channel=self.channel.id,
                available=update.available,
                version=update.version,
                ts=ts,
            )
        )
        try:
            await client.publish(
                self.topic(update.sku), payload, qos=1, retain=True, timeout=self._timeout_s
            )
        except aiomqtt.MqttError as exc:
            return f"not acknowledged: {exc}"
        return None

    async def _collect(
        self, client: aiomqtt.Client, topics: dict[str, str], found: dict[str, int]
    ) -> None:
        """Read retained messages into ``found`` until every topic answered, nothing arrived for
        the read-back wait, or ``timeout_s`` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        answered: set[str] = set()
        while len(answered) < len(topics):
            wait = min(self._read_wait_s, deadline - loop.time())
            if wait <= 0:
                break
            try:
                message = await asyncio.wait_for(anext(client.messages), wait)
            except TimeoutError:
                break
            topic = str(message.topic)
            # Live messages (retain flag clear) are not what the broker holds for the topic.
            if not message.retain or topic not in topics:
                continue
            answered.add(topic)
            raw = message.payload
            payload = raw if isinstance(raw, bytes | bytearray) else str(raw).encode()
            try:
                decoded = _retained_decoder.decode(payload)
            except msgspec.DecodeError as exc:
                self._log.warning("mqtt_retained_unreadable", topic=topic, error=str(exc))
                continue
            found[topics[topic]] = decoded if isinstance(decoded, int) else decoded.available

    def _connection_error(self, exc: aiomqtt.MqttError) -> ChannelError:
        where = f"MQTT broker {self.broker.address}"
        if isinstance(exc, MqttConnectError):  # a CONNACK that refuses us
            code = _code(exc.rc)
            if code in _BAD_CREDENTIALS:
                return Unauthorized(f"{where} refused the credentials of this channel: {exc}")
            if code not in _BROKER_BUSY:
                return Permanent(f"{where} refused the connection: {exc}")
        return Retryable(f"{where}: {exc}")


def _code(rc: object) -> int | None:
    """The numeric value of a paho return or reason code."""
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


def _failed(code: object) -> bool:
    value = _code(code)
    return value is not None and value >= _SUBACK_FAILURE
