"""Which adapter speaks for a configured channel: ``make_adapter(channel, session)``."""

from __future__ import annotations

import aiohttp

from ..daemon.config import Channel, resolve_secret
from .base import ChannelAdapter
from .webhook import WebhookAdapter

__all__ = ["MissingSecret", "make_adapter"]


class MissingSecret(ValueError):
    """A channel's secret is referenced by an environment variable that is unset or empty."""

    def __init__(self, channel: str, key: str, env: str | None) -> None:
        self.channel = channel
        self.key = key
        self.env = env
        what = f"environment variable {env} is not set (or empty)" if env else "not configured"
        super().__init__(f"channel '{channel}': {key}: {what}")


def make_adapter(channel: Channel, session: aiohttp.ClientSession) -> ChannelAdapter | None:
    """The adapter for ``channel``, sharing ``session``; None for kinds without one yet.

    Raises MissingSecret (a ValueError naming the variable) when a required secret is absent.
    """
    if channel.kind == "webhook":
        secret = resolve_secret(channel.secret_env)
        if secret is None:
            raise MissingSecret(channel.id, "secret_env", channel.secret_env)
        return WebhookAdapter(channel, session, secret)
    # Marketplace adapters (shopify, amazon, ebay, walmart, ...) arrive with their own issue.
    return None
