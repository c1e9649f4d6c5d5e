"""The sender for a location's ``fulfillment`` config (its kind picks the module)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from ...core.config import Location, MqttConfig, resolve_secret
from ...core.fulfillment_config import Edi940Fulfillment, MqttFulfillment, WebhookFulfillment
from .base import MissingSecret, Sender
from .edi940 import Edi940Writer
from .mqtt import MqttSender
from .webhook import WebhookSender

__all__ = ["make_sender", "missing_secret"]


def missing_secret(location: Location, mqtt: MqttConfig) -> str | None:
    """The environment variable a location's fulfillment needs and does not have, or None."""
    config = location.fulfillment
    if isinstance(config, WebhookFulfillment) and not resolve_secret(config.secret_env):
        return config.secret_env
    if isinstance(config, MqttFulfillment) and mqtt.password_env is not None:
        if not resolve_secret(mqtt.password_env):
            return mqtt.password_env
    return None


def make_sender(
    location: Location,
    *,
    session: aiohttp.ClientSession,
    redis: Redis,
    mqtt: MqttConfig,
    base_dir: Path,
    wall: Callable[[], float],
) -> Sender:
    """A sender for ``location`` (which has a fulfillment config); MissingSecret when the
    secret it names is not set."""
    config = location.fulfillment
    if isinstance(config, WebhookFulfillment):
        secret = resolve_secret(config.secret_env)
        if not secret:
            raise MissingSecret(location.id, "fulfillment.secret_env", config.secret_env)
        return WebhookSender(location.id, config, session, secret)
    if isinstance(config, Edi940Fulfillment):
        return Edi940Writer(location.id, config, redis, base_dir=base_dir, wall=wall)
    if isinstance(config, MqttFulfillment):
        password = resolve_secret(mqtt.password_env) if mqtt.password_env else None
        if mqtt.password_env and not password:
            raise MissingSecret(location.id, "mqtt.password_env", mqtt.password_env)
        return MqttSender(location.id, config, mqtt, password)
    raise ValueError(f"location '{location.id}' has no fulfillment config")
