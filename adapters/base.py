"""The one interface every channel adapter implements, and the errors it speaks.

An adapter is the channel's wire format and little else: batching, rate limiting, retries,
coalescing and the circuit breaker live once, in the channel actor (``actors/channel.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import msgspec


class Update(msgspec.Struct, frozen=True, kw_only=True):
    """Set ``sku`` to ``available`` units on the channel; ``version`` is the SKU's version."""

    sku: str
    available: int
    version: int


Outcome = Literal["ok", "throttled", "retryable", "permanent"]


class PushResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the channel said about one SKU of a batch."""

    sku: str
    outcome: Outcome
    retry_after: float | None = None  # seconds, when the channel said so
    error: str | None = None


class ChannelError(Exception):
    """A failure of a whole call to the channel (no per-SKU results)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Throttled(ChannelError):
    """The channel asks us to slow down (HTTP 429, a throttle error); wait ``retry_after``."""


class Retryable(ChannelError):
    """A transient failure (5xx, timeout, connection refused); retry with backoff."""


class Permanent(ChannelError):
    """The channel refuses this for good (4xx other than 429, bad credentials); do not retry."""


class BadWebhook(Exception):
    """An inbound webhook is malformed (400) or fails its signature check (401)."""

    def __init__(self, message: str, *, unauthorized: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unauthorized = unauthorized


class ChannelAdapter(Protocol):
    """Speaks one channel's API. Implementations live in ``adapters/<kind>.py``."""

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Send a batch; per-SKU results, or raise Throttled/Retryable/Permanent for all."""
        ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[dict[str, object]]:
        """Verify and translate an inbound webhook into the spec's generic event objects."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
