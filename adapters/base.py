"""The one interface every channel adapter implements, and the errors it speaks.

An adapter is the channel's wire format and little else: batching, rate limiting, retries,
coalescing and the circuit breaker live once, in the channel actor (``actors/channel.py``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from ..core.clock import Clock, SystemClock
from ..core.events import Event

if TYPE_CHECKING:
    import aiohttp
    from redis.asyncio import Redis

    from ..core.config import Channel, MqttConfig


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


class Unauthorized(Permanent):
    """401/403: the credentials were refused. Adapters with a token source refresh once and
    retry before letting this reach the channel actor."""


class BadWebhook(Exception):
    """An inbound webhook is malformed (400) or fails its signature check (401)."""

    def __init__(self, message: str, *, unauthorized: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unauthorized = unauthorized


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an order told to a channel (a cancellation)."""

    sku: str
    qty: int


#: Records typed events into the durable intake, as a webhook would; ``source`` names where they
#: came from (``"poll:shopify"``). Returns their ids.
Ingest = Callable[[list[Event], str], Awaitable[list[str]]]


async def _no_ingest(events: list[Event], source: str) -> list[str]:
    raise RuntimeError("this adapter context cannot record events")


@dataclass(frozen=True, kw_only=True)
class AdapterContext:
    """What an adapter may use besides its channel's config, handed over by the daemon.

    ``session`` and ``redis`` belong to the daemon (adapters never close them); ``redis`` keeps
    small durable adapter state (EDI control numbers) under keys ``adapter:{<channel>}:...``.
    ``wall`` is epoch seconds, ``monotonic`` for deadlines and token expiry, ``clock`` what an
    adapter sleeps on (waiting out a throttle, polling a feed). ``base_dir`` is
    the config file's folder: relative paths in a channel's options resolve against it.
    """

    session: aiohttp.ClientSession
    redis: Redis | None = None
    ingest: Ingest = _no_ingest
    mqtt: MqttConfig | None = None
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    clock: Clock = field(default_factory=SystemClock)
    base_dir: Path = Path(".")
    extra: dict[str, Any] = field(default_factory=dict)


class ChannelAdapter(Protocol):
    """Speaks one channel's API. Implementations live in ``adapters/<kind>.py``."""

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Send a batch; per-SKU results, or raise Throttled/Retryable/Permanent for all."""
        ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify and translate an inbound webhook into typed events (BadWebhook if it is bad,
        BadEvent if what it says is not a valid event)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class ReadsBack(Protocol):
    """An adapter whose channel can say what quantity it holds (drift detection)."""

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """SKU -> the quantity the channel shows now; SKUs it does not list are left out."""
        ...


@runtime_checkable
class ParsesWebhooksAsync(Protocol):
    """An adapter that must call its channel back to translate a webhook (TikTok's order
    notifications carry no line items). The daemon awaits this instead of ``parse_webhook``
    and answers 503 when it raises a ChannelError, so the channel delivers the webhook again:
    nothing is acknowledged that was not recorded."""

    async def parse_webhook_async(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify and translate, calling the channel where needed; BadWebhook as the sync one."""
        ...


@runtime_checkable
class RunsInBackground(Protocol):
    """An adapter with work of its own beside pushes (eBay's order poll). The daemon's channel
    manager runs ``run`` while the channel runs, restarts it with a backoff when it raises
    (logged, never crashing the daemon) and cancels it when the channel stops. ``run`` loops
    until cancelled; returning means there is nothing (more) to do."""

    async def run(self) -> None:
        """Do the background work until cancelled."""
        ...


@runtime_checkable
class CancelsOrders(Protocol):
    """An adapter whose channel's API can cancel an order (or some of its lines)."""

    async def cancel_order(
        self, order_id: str, lines: Sequence[OrderLine] | None, reason: str
    ) -> None:
        """Cancel on the channel; raises Throttled/Retryable/Permanent when it refuses."""
        ...


class BaseAdapter:
    """Defaults every adapter shares: no inbound webhooks, nothing to close, no batch limit.

    ``max_batch`` is the most updates the channel's API takes in one call (None: no limit); the
    channel actor never hands ``push`` more than ``min(batch_size, max_batch)``.
    """

    max_batch: ClassVar[int | None] = None
    channel: Channel

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """This channel takes no inbound webhooks."""
        raise BadWebhook(f"channel '{self.channel.id}' ({self.channel.kind}) takes no webhooks")

    async def aclose(self) -> None:
        """Nothing to release: the HTTP session belongs to the daemon."""


def results_for(updates: Sequence[Update], failures: Mapping[str, PushResult]) -> list[PushResult]:
    """One result per update: the failure the channel reported for its SKU, else ``ok``."""
    return [failures.get(u.sku) or PushResult(sku=u.sku, outcome="ok") for u in updates]
