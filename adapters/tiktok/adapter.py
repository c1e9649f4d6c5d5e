"""The ``tiktok`` channel adapter: options and credentials in, push / read-back / webhooks out."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import aiohttp

from ...core.clock import Clock, SystemClock
from ...core.config import Channel, resolve_secret
from ...core.events import Event
from ..base import AdapterContext, BaseAdapter, PushResult, Update
from ..http import base_url
from ..options import option_secret, parse_options
from ..registry import MissingSecret
from .catalog import Catalog
from .client import TikTokClient
from .options import Options
from .push import push
from .readback import read_back
from .webhooks import parse_webhook, parse_webhook_async

__all__ = ["TikTokAdapter", "create"]


def create(channel: Channel, ctx: AdapterContext) -> TikTokAdapter:
    """The adapter for a ``tiktok`` channel.

    Needs ``url``, ``options.app_key``, ``options.app_secret_env``, ``options.shop_cipher``,
    ``options.warehouse_id`` and an access token (``token_env``) and/or a refresh token
    (``options.refresh_token_env``); MissingSecret names an unset variable.
    """
    options = parse_options(channel, Options)
    app_secret = option_secret(channel, "app_secret_env", options.app_secret_env)
    access = resolve_secret(channel.token_env)
    refresh = None
    if options.refresh_token_env is not None:
        refresh = option_secret(channel, "refresh_token_env", options.refresh_token_env)
    if access is None and refresh is None:
        raise MissingSecret(channel.id, "token_env", channel.token_env)
    return TikTokAdapter(
        channel,
        ctx.session,
        options=options,
        app_secret=app_secret,
        access_token=access,
        refresh_token=refresh,
        clock=ctx.clock,
        wall=ctx.wall,
        monotonic=ctx.monotonic,
    )


class TikTokAdapter(BaseAdapter):
    """Pushes quantities to one TikTok shop's warehouse, reads them back, takes its webhooks.

    The HTTP session belongs to the caller; ``monotonic`` drives token expiry, ``wall`` the
    signed ``timestamp``, ``clock`` the waits of a paced read-back. ``options`` None reads them
    from ``channel``.
    """

    max_batch: ClassVar[int | None] = None  # one call per product; searches are paged by 100

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        *,
        app_secret: str,
        access_token: str | None,
        refresh_token: str | None = None,
        options: Options | None = None,
        clock: Clock | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not app_secret:
            raise ValueError(f"channel '{channel.id}': the TikTok Shop app secret is empty")
        self.channel = channel
        self.options = options if options is not None else parse_options(channel, Options)
        self._client = TikTokClient(
            channel.id,
            session,
            base_url(channel),
            self.options,
            app_secret=app_secret,
            access_token=access_token,
            refresh_token=refresh_token,
            clock=clock if clock is not None else SystemClock(),
            monotonic=monotonic,
            wall=wall,
        )
        self.tokens = self._client.tokens
        self._catalog = Catalog(self._client)

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """One inventory update per product; per-SKU results, or the shared failure raised."""
        return await push(self._client, self._catalog, updates)

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """What the shop shows at ``options.warehouse_id``; SKUs it does not list are left out."""
        return await read_back(self._client, self._catalog, skus)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify and translate what needs no call back: a cancellation or fulfilment (the whole
        order); other types and statuses make no event. A creation is refused (BadWebhook): its
        lines need Get Order Detail, which only ``parse_webhook_async`` calls."""
        return parse_webhook(self._client, headers, body)

    async def parse_webhook_async(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify and translate as ``parse_webhook``, and a creation too: its ``order.created``
        from Get Order Detail, called now within ``options.timeout_s``. The lookup's
        ChannelErrors propagate (the daemon answers 503 and TikTok delivers the webhook again)."""
        return await parse_webhook_async(self._client, self._catalog, headers, body)
