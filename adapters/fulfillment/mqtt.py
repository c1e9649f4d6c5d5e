"""``kind = "mqtt"``: each message is published as JSON on the location's topic, QoS 1.

The broker is the one of ``[mqtt]``. A message counts as handed over when the broker acknowledges
the publish (PUBACK): from there the broker keeps it for the location's subscriber (a persistent
session with QoS 1 on the location's side receives every message at least once). A broker that
cannot be reached or does not acknowledge within the timeout makes the message ``Undelivered``;
MQTT has no refusal, so a location that cannot use a message answers on its own topic (docs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiomqtt
import msgspec

from ...core.config import MqttConfig
from ...core.fulfillment_config import MqttFulfillment
from ...core.fulfillment_messages import Message
from .base import Undelivered

__all__ = ["MqttSender"]


class MqttSender:
    """QoS 1 publishes to one topic; one connection, opened when needed and kept."""

    batch_size = 50

    def __init__(
        self, location: str, config: MqttFulfillment, broker: MqttConfig, password: str | None
    ) -> None:
        assert broker.url is not None
        self.location = location
        self.topic = config.topic
        self._timeout = config.retry.timeout_s
        parts = urlsplit(broker.url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._tls = parts.scheme in ("mqtts", "wss")
        self._transport = "websockets" if parts.scheme in ("ws", "wss") else "tcp"
        self._username = broker.username
        self._password = password
        self._client_id = f"{broker.client_id}-fulfillment-{location}"
        self._client: aiomqtt.Client | None = None

    async def _connected(self) -> aiomqtt.Client:
        if self._client is None:
            client = aiomqtt.Client(
                self._host,
                self._port,
                identifier=self._client_id,
                username=self._username,
                password=self._password,
                transport=self._transport,  # type: ignore[arg-type]
                tls_params=aiomqtt.TLSParameters() if self._tls else None,
                timeout=self._timeout,
            )
            await client.__aenter__()
            self._client = client
        return self._client

    async def send(self, messages: Sequence[Message]) -> None:
        try:
            async with asyncio.timeout(self._timeout * max(1, len(messages))):
                client = await self._connected()
                for message in messages:
                    await client.publish(self.topic, msgspec.json.encode(message), qos=1)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            await self.aclose()
            raise Undelivered(f"MQTT broker {self._host}:{self._port}: {exc}") from exc

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            except (aiomqtt.MqttError, OSError):
                pass
