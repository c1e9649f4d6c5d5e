"""The daily revision budget of each eBay listing, kept in the store.

bulkUpdatePriceQuantity (``/api-docs/sell/inventory/resources/inventory_item/methods/
bulkUpdatePriceQuantity``): "Each listing can be revised up to 250 times in one calendar day. If
this revision threshold is reached, the seller will be blocked from revising the item until the
next calendar day." Every successful quantity update of a SKU with published offers revises
their listings once, so the count is kept per listing and UTC day, under
``adapter:{<channel>}:revisions:<yyyymmdd>`` (a hash listing id -> revisions, expiring after two
days) when the daemon has a store, else in memory. eBay does not say which time zone its
"calendar day" is in: counting per UTC day may, around midnight, let a day in another zone see
more than 250; ``options.revisions_per_day`` lowers the budget for a margin.

A listing whose budget is spent is not sent: the push answers ``retryable`` for its SKU (the
channel worker keeps the newest value pending and tries again later, without holding up other
SKUs), counts ``invsync_listing_revision_holds_total`` and logs ``ebay_revisions_exhausted``
once per listing and day.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import RedisError

from ..base import Retryable

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DAY_S", "RevisionBudget", "utc_day"]

log = structlog.get_logger("invsync.adapters.ebay")

DAY_S = 86_400
#: How long a day's counts are kept (a day, and a day of margin for clocks and time zones).
KEEP_S = 2 * DAY_S


def utc_day(epoch_s: float) -> str:
    """The UTC calendar day of ``epoch_s`` as ``yyyymmdd``."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y%m%d")


class RevisionBudget:
    """Counts each listing's revisions per UTC day; ``spent`` says which may not be revised."""

    def __init__(
        self,
        channel_id: str,
        limit: int,
        redis: Redis | None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.channel_id = channel_id
        self.limit = limit
        self._redis = redis
        self._wall = wall
        self._memory: dict[str, dict[str, int]] = {}
        self._told: set[tuple[str, str]] = set()

    def key(self, day: str) -> str:
        """The store key of one day's counts."""
        return f"adapter:{{{self.channel_id}}}:revisions:{day}"

    def seconds_to_next_day(self) -> float:
        """Seconds until the next UTC midnight (when held listings may be revised again)."""
        now = self._wall()
        return DAY_S - (now % DAY_S)

    async def counts(self, listings: Iterable[str]) -> dict[str, int]:
        """Today's revisions of each listing; Retryable when the store cannot say."""
        wanted = list(dict.fromkeys(listings))
        if not wanted:
            return {}
        day = utc_day(self._wall())
        if self._redis is None:
            today = self._memory.get(day, {})
            return {listing: today.get(listing, 0) for listing in wanted}
        try:
            raw = await self._redis.hmget(self.key(day), wanted)
        except RedisError as exc:
            raise Retryable(f"listing revision counts unreadable: {exc}") from exc
        return {listing: int(v or 0) for listing, v in zip(wanted, raw, strict=True)}

    async def spent(self, listings: Iterable[str]) -> list[str]:
        """The listings that used up today's budget (logged once per listing and day)."""
        day = utc_day(self._wall())
        out = [listing for listing, n in (await self.counts(listings)).items() if n >= self.limit]
        for listing in out:
            if (listing, day) not in self._told:
                self._told.add((listing, day))
                log.warning(
                    "ebay_revisions_exhausted",
                    channel=self.channel_id,
                    listing_id=listing,
                    limit=self.limit,
                    day=day,
                    resumes_in_s=round(self.seconds_to_next_day()),
                )
        return out

    async def spend(self, listings: Iterable[str]) -> None:
        """Count one revision of each listing today. A store error is logged: the update went
        through, and eBay, not us, has the last word on its limit."""
        wanted = list(dict.fromkeys(listings))
        if not wanted:
            return
        day = utc_day(self._wall())
        if self._redis is None:
            today = self._memory.setdefault(day, {})
            for listing in wanted:
                today[listing] = today.get(listing, 0) + 1
            for old in [d for d in self._memory if d != day]:
                del self._memory[old]
            return
        key = self.key(day)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for listing in wanted:
                    pipe.hincrby(key, listing, 1)
                pipe.expire(key, KEEP_S)
                await pipe.execute()
        except RedisError as exc:
            log.warning("ebay_revisions_not_counted", channel=self.channel_id, error=str(exc))
