"""The inventory feed allowance: at most ``options.feeds_per_hour`` feeds, replenished gradually.

Walmart allows 10 bulk inventory feeds an hour and refills an hourly allowance little by little
("if 20 calls are available every hour, one call will be available every three minutes after all
the calls are already consumed"), answering 429 with ``Retry-After`` beyond it:
https://developer.walmart.com/us-marketplace/docs/rate-limiting,
https://developer.walmart.com/doc/us/us-dsv/us-dsv-rate-limit/,
https://developer.walmart.com/cl-marketplace/docs/bulk-inventory-update. invsync keeps its own
count so it waits for a slot instead of spending a request on a 429. A 429 Walmart sends anyway
(another tool on the same seller account) gives the feed back and holds every feed until its
``Retry-After``; an upload that failed otherwise (5xx, no answer) keeps its feed counted, as
Walmart may have counted it.
"""

from __future__ import annotations

from ...core.clock import Clock

__all__ = ["FeedPacer"]


class FeedPacer:
    """A bucket of ``per_hour`` feeds on ``clock``, full at first, refilled at ``per_hour`` an
    hour; ``wait()`` takes one feed, sleeping on the clock until one is there."""

    def __init__(self, per_hour: int, clock: Clock) -> None:
        if per_hour < 1:
            raise ValueError(f"feeds_per_hour must be >= 1 (got {per_hour})")
        self.capacity = float(per_hour)
        self.rate = per_hour / 3600.0
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock.now()
        self._held_until = float("-inf")

    def _refill(self) -> None:
        now = self._clock.now()
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def available(self) -> float:
        """Feeds that could be sent now (fractional while refilling)."""
        self._refill()
        return self._tokens

    def wait_s(self) -> float:
        """Seconds until a feed may be sent (0 when one may go now)."""
        self._refill()
        held = max(0.0, self._held_until - self._clock.now())
        return max(held, 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate)

    async def wait(self) -> float:
        """Take one feed, sleeping on the clock until there is one; how long it slept."""
        slept = 0.0
        while (delay := self.wait_s()) > 0:
            await self._clock.sleep(delay)
            slept += delay
        self._tokens -= 1
        return slept

    def refused(self, retry_after: float | None) -> None:
        """Walmart throttled the feed just taken: it is given back, and no feed goes before
        ``retry_after`` seconds (None: one refill interval)."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens + 1)
        hold = retry_after if retry_after is not None and retry_after > 0 else 1 / self.rate
        self._held_until = max(self._held_until, self._clock.now() + hold)
