"""The rate-limit models the simulated marketplaces enforce: pure, on an injectable clock.

- ``CostBucket``: Shopify's leaky bucket of query-cost points (capacity, restore rate per second).
- ``TokenBucket``: SP-API's per-operation rate and burst (also TikTok's per-second limits).
- ``FixedWindow``: N calls per fixed window (eBay's and Walmart's per-minute/-day quotas).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["CostBucket", "FixedWindow", "TokenBucket"]


class CostBucket:
    """A leaky bucket of ``capacity`` points refilling at ``restore_rate`` points per second."""

    def __init__(
        self, capacity: float, restore_rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.restore_rate = restore_rate
        self._clock = clock
        self._level = capacity
        self._at = clock()

    def available(self) -> float:
        """Points available now."""
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._at) * self.restore_rate)
        self._at = now
        return self._level

    def take(self, cost: float) -> bool:
        """Spend ``cost`` points if that many are available (else spend nothing)."""
        if self.available() < cost:
            return False
        self._level -= cost
        return True

    def refund(self, points: float) -> None:
        """Give back the difference between a requested and an actual cost."""
        self._level = min(self.capacity, self.available() + points)


class TokenBucket:
    """``rate`` requests per second with bursts of ``burst``."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        """One request if a token is there."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def wait_s(self) -> float:
        """Seconds until the next token (for a Retry-After)."""
        return max(0.0, (1.0 - self._tokens) / self.rate) if self.rate > 0 else math.inf


class FixedWindow:
    """``limit`` calls per window of ``window_s`` seconds, counted from aligned window starts."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._window = -1
        self._count = 0

    def take(self) -> bool:
        """One call if the current window has room."""
        window = int(self._clock() // self.window_s)
        if window != self._window:
            self._window, self._count = window, 0
        if self._count >= self.limit:
            return False
        self._count += 1
        return True

    def reset_in_s(self) -> float:
        """Seconds until the current window ends."""
        now = self._clock()
        return self.window_s - (now % self.window_s)
