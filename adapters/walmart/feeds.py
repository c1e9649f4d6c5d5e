"""Large batches: one bulk item inventory feed, uploaded, polled on the clock, read item by item.

- Bulk item inventory feed, spec 1.4 ``{"InventoryHeader": {"version": "1.4"}, "Inventory":
  [...]}``, ``POST /v3/feeds?feedType=inventory`` as ``multipart/form-data`` with the feed in the
  ``file`` part; 429 with ``Retry-After`` when feeds come too fast, 10 feeds an hour, 5 MB:
  https://developer.walmart.com/us-marketplace/docs/bulk-inventory-update-feed,
  https://developer.walmart.com/ca-marketplace/docs/throttling
- Feed item status ``GET /v3/feeds/{feedId}?includeDetails=true&offset=&limit=`` (limit at most
  1000, ``@`` in a feed id sent as ``%40``), feed statuses RECEIVED / INPROGRESS / PROCESSED /
  ERROR and per-item ``ingestionStatus`` SUCCESS / DATA_ERROR / SYSTEM_ERROR / TIMEOUT_ERROR:
  https://developer.walmart.com/us-marketplace/docs/feed-item-status-api-for-tracking-fitment-files,
  https://developer.walmart.com/cl-marketplace/docs/feeds-overview.

- Limits: 10 inventory feeds an hour, 5 MB and 50,000 items a feed, up to 30 minutes to
  process: https://marketplacelearn.walmart.com/guides/Item%20setup/Item%20setup/Track-item-setup-or-maintenance-activity-in-Seller-Center,
  https://developer.walmart.com/suppliers/docs/async-api-throttling-limits (``inventory``
  row). A feed waits for its slot (``pacing.FeedPacer``, ``options.feeds_per_hour``).

The feed is polled every ``options.feed_poll_s`` until processed or ``options.feed_timeout_s``
ran out (then every SKU is retryable: the feed is sent again, which is harmless as quantities are
absolute).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import quote

import aiohttp
import msgspec

from ..base import Permanent, PushResult, Retryable, Throttled, Unauthorized, Update
from ..http import HttpReply
from .client import WalmartClient
from .pacing import FeedPacer
from .wire import (
    FeedStatus,
    IngestionError,
    Inventory,
    InventoryFeed,
    InventoryHeader,
    ItemIngestionStatus,
    Quantity,
    decode_feed_ack,
    decode_feed_status,
    encode,
)

__all__ = ["FEED_PAGE_LIMIT", "push_feed"]

#: Item details per feed-status page: the documented maximum of ``limit``.
FEED_PAGE_LIMIT = 1000
_FINAL_FEED = frozenset({"PROCESSED", "ERROR"})
#: The first wait between two polls of a feed; it doubles up to ``options.feed_poll_s``.
_FIRST_POLL_S = 0.5


async def push_feed(
    client: WalmartClient, updates: Sequence[Update], pacer: FeedPacer
) -> list[PushResult]:
    """Send ``updates`` as one inventory feed once ``pacer`` allows one, and wait for it:
    per-SKU results, or the failure of the upload (or of the whole feed) raised."""
    latest: dict[str, int] = {}
    for update in updates:  # the last word on a SKU wins, as it would in sequence
        latest[update.sku] = max(0, update.available)
    feed = InventoryFeed(
        header=InventoryHeader(version="1.4"),
        inventory=[Inventory(sku=s, quantity=Quantity(amount=a)) for s, a in latest.items()],
    )
    raw = encode(feed)

    def form() -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("file", raw, filename="inventory.json", content_type="application/json")
        return data

    reply = await _upload(client, pacer, form)
    try:
        feed_id = decode_feed_ack(reply.body).feed_id
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Retryable(f"the feed upload answered no feedId: {exc}") from exc
    done = await _await_feed(client, feed_id)
    if done is None:
        why = f"feed {feed_id} not processed within {client.options.feed_timeout_s:g} s"
        return [PushResult(sku=u.sku, outcome="retryable", error=why) for u in updates]
    status, items = done
    if status.feed_status == "ERROR":
        errors = status.ingestion_errors.ingestion_error if status.ingestion_errors else None
        text = f"feed {feed_id} failed as a whole: {_ingestion_text(errors)}"
        if any(e.type == "DATA_ERROR" for e in errors or ()):
            raise Permanent(text)
        raise Retryable(text)
    order = list(latest)
    by_sku: dict[str, ItemIngestionStatus] = {}
    for item in items:
        sku = item.sku
        if sku is None and item.index is not None and 0 <= item.index < len(order):
            sku = order[item.index]
        if sku is not None:
            by_sku[sku] = item
    return [_feed_result(u.sku, by_sku.get(u.sku), feed_id) for u in updates]


async def _upload(
    client: WalmartClient, pacer: FeedPacer, form: Callable[[], aiohttp.FormData]
) -> HttpReply:
    """The feed upload, once ``pacer`` has a slot. A 429 (another tool spent the account's
    feeds) holds the pacer for its Retry-After and is waited out, counted as throttled, as long
    as the wait fits in ``feed_timeout_s``; beyond that the Throttled is raised."""
    deadline = client.clock.now() + client.options.feed_timeout_s
    while True:
        await pacer.wait()
        try:
            return await client.call(
                "POST", "/v3/feeds", params={"feedType": "inventory"}, form=form
            )
        except Throttled as exc:
            pacer.refused(exc.retry_after)
            if client.clock.now() + pacer.wait_s() > deadline:
                raise
            client.throttled()


async def _await_feed(
    client: WalmartClient, feed_id: str
) -> tuple[FeedStatus, list[ItemIngestionStatus]] | None:
    """Poll the feed until it is processed (or failed); None when ``feed_timeout_s`` ran out.
    Polls come at once, then after 0.5 s, 1 s, 2 s ... and every ``feed_poll_s`` at most (a
    small feed is often done in seconds; 0: a single poll). Throttled or failed polls wait and
    poll again; refused credentials end it."""
    poll_s, timeout_s = client.options.feed_poll_s, client.options.feed_timeout_s
    clock = client.clock
    deadline = clock.now() + timeout_s
    wait = min(poll_s, _FIRST_POLL_S)
    while True:
        try:
            done = await _feed_status(client, feed_id)
        except Unauthorized:
            raise
        except Throttled:
            client.throttled()  # waited out: the next poll comes after the usual pause
            done = None
        except Retryable:
            done = None
        if done is not None:
            return done
        remaining = deadline - clock.now()
        if poll_s <= 0 or remaining <= 0:
            return None
        await clock.sleep(min(wait, remaining))
        wait = min(poll_s, wait * 2)


async def _feed_status(
    client: WalmartClient, feed_id: str
) -> tuple[FeedStatus, list[ItemIngestionStatus]] | None:
    path = f"/v3/feeds/{quote(feed_id, safe='')}"
    items: list[ItemIngestionStatus] = []
    while True:
        params = {
            "includeDetails": "true",
            "offset": str(len(items)),
            "limit": str(FEED_PAGE_LIMIT),
        }
        reply = await client.call("GET", path, params=params)
        try:
            page = decode_feed_status(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"unreadable status of feed {feed_id}: {exc}") from exc
        if page.feed_status not in _FINAL_FEED:
            return None
        got = (page.item_details.item_ingestion_status if page.item_details else None) or []
        items.extend(got)
        if not got or len(items) >= (page.items_received or 0):
            return page, items


def _ingestion_text(errors: Sequence[IngestionError] | None) -> str:
    if not errors:
        return "no reason given"
    return "; ".join(
        f"{e.code or e.type or 'ERROR'}: {e.description or ''}".rstrip(": ") for e in errors
    )


def _feed_result(sku: str, item: ItemIngestionStatus | None, feed_id: str) -> PushResult:
    """A SKU's outcome from its feed item: SUCCESS ok, DATA_ERROR permanent, else retryable."""
    if item is None:
        return PushResult(
            sku=sku, outcome="retryable", error=f"feed {feed_id} reported nothing for this SKU"
        )
    status = item.ingestion_status
    if status == "SUCCESS":
        return PushResult(sku=sku, outcome="ok")
    errors = item.ingestion_errors.ingestion_error if item.ingestion_errors else None
    text = f"{status}: {_ingestion_text(errors)}"
    if status == "DATA_ERROR":
        return PushResult(sku=sku, outcome="permanent", error=text)
    return PushResult(sku=sku, outcome="retryable", error=text)  # SYSTEM_/TIMEOUT_ERROR, ...
