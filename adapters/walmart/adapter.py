"""The ``walmart`` channel adapter: options and credentials in, push / read-back / cancel /
webhooks out.

A change that cannot wait (a SKU selling out or falling below ``options.urgent_below``) goes as
a single ``PUT`` (``push.py``, at most ``options.max_concurrency`` at a time); every other change
of the batch goes in one inventory feed (``feeds.py``), at most ``options.feeds_per_hour`` an hour
(``pacing.py``). ``lanes.py`` tells them apart and cites why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import aiohttp

from ...core.clock import Clock, SystemClock
from ...core.config import Channel
from ...core.events import Event
from ..base import AdapterContext, BaseAdapter, OrderLine, PushResult, Update
from ..http import base_url
from ..options import option_secret, parse_options, require_env
from .cancel import cancel_order
from .client import WalmartClient
from .feeds import push_feed
from .lanes import push_both, split
from .options import Options
from .pacing import FeedPacer
from .push import put_each
from .readback import read_back
from .webhooks import parse_notification

__all__ = ["WalmartAdapter", "create"]


def create(channel: Channel, ctx: AdapterContext) -> WalmartAdapter:
    """The adapter for a ``walmart`` channel: client id and secret from ``options.client_id_env``
    and ``options.client_secret_env``; ``secret_env`` (optional) signs relayed notifications.
    MissingSecret names an unset variable."""
    if channel.token_env:
        raise ValueError(
            f"channel '{channel.id}': walmart does not use token_env; name the client "
            "credentials' variables in options.client_id_env and options.client_secret_env"
        )
    options = parse_options(channel, Options)
    client_id = option_secret(channel, "client_id_env", options.client_id_env)
    client_secret = option_secret(channel, "client_secret_env", options.client_secret_env)
    relay_secret = (
        require_env(channel.id, "secret_env", channel.secret_env) if channel.secret_env else None
    )
    return WalmartAdapter(
        channel,
        ctx.session,
        options=options,
        client_id=client_id,
        client_secret=client_secret,
        relay_secret=relay_secret,
        clock=ctx.clock,
        monotonic=ctx.monotonic,
        wall=ctx.wall,
    )


class WalmartAdapter(BaseAdapter):
    """Pushes quantities to Walmart Marketplace (single PUTs or the inventory feed), reads them
    back, cancels order lines and translates relayed PO notifications.

    The HTTP session belongs to the caller; ``monotonic`` drives token expiry, ``wall`` turns
    ``X-Next-Replenishment-Time`` into seconds, ``clock`` paces feed-status polls. ``options``
    None reads them from ``channel``.
    """

    #: One inventory feed; Walmart caps a feed file at 5 MB (ca-marketplace throttling table),
    #: far above this many ~80-byte items.
    max_batch: ClassVar[int | None] = 10_000

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        *,
        client_id: str,
        client_secret: str,
        relay_secret: str | None = None,
        options: Options | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError(f"channel '{channel.id}': walmart client id and secret are required")
        self.channel = channel
        self.options = options if options is not None else parse_options(channel, Options)
        self._relay_secret = relay_secret
        self._client = WalmartClient(
            session,
            base_url(channel),
            self.options,
            client_id=client_id,
            client_secret=client_secret,
            clock=clock if clock is not None else SystemClock(),
            monotonic=monotonic,
            wall=wall,
            channel_id=channel.id,
        )
        self.tokens = self._client.tokens
        #: The inventory feed allowance (``options.feeds_per_hour``) on the adapter's clock.
        self.feeds = FeedPacer(self.options.feeds_per_hour, self._client.clock)

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Set each SKU's quantity: urgent changes (0, below ``urgent_below``) one PUT each,
        the others in one inventory feed, both at once."""
        urgent, routine = split(updates, self.options)

        async def put(part: Sequence[Update]) -> list[PushResult]:
            return await put_each(self._client, part)

        async def feed(part: Sequence[Update]) -> list[PushResult]:
            return await push_feed(self._client, part, self.feeds)

        return await push_both(urgent, routine, put, feed)

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """Each SKU's quantity at the default ship node; SKUs Walmart does not know (404) are
        left out."""
        return await read_back(self._client, skus)

    async def cancel_order(
        self, order_id: str, lines: Sequence[OrderLine] | None, reason: str
    ) -> None:
        """Cancel the open units of ``lines`` (by SKU; None: every line) of purchase order
        ``order_id``. ``reason`` is used when it is one of Walmart's codes, else
        ``options.cancel_reason``. Units already cancelled count as done."""
        await cancel_order(self._client, order_id, lines, reason)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """A relayed ``PO_CREATED`` (order.created) or ``PO_LINE_AUTOCANCELLED``
        (order.cancelled of its lines) notification; other event types are acknowledged and
        dropped. The relay's ``X-Invsync-Signature`` is required."""
        return parse_notification(self.channel.id, self._relay_secret, headers, body)
