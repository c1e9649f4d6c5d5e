"""A token bucket on the injectable clock: a channel's real rate limit, adaptive on throttling.

``rate`` tokens per second accrue up to ``burst``; one request costs one token. A channel's own
throttle signal (HTTP 429 with Retry-After, a throttle error) pauses the bucket and halves the
rate; each success then restores a twentieth of the configured rate, so the channel is probed
back to its nominal limit rather than hammered at it.
"""

from __future__ import annotations

import asyncio

from ..core.clock import Clock

__all__ = ["TokenBucket"]

#: Fraction of the configured rate one success gives back after a throttle.
RECOVERY_STEP = 0.05


class TokenBucket:
    """``rate`` requests per second with bursts of up to ``burst``; waiters are served FIFO."""

    def __init__(
        self, rate: float, burst: float, *, clock: Clock, min_rate: float | None = None
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 (got {rate})")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1 (got {burst})")
        self.configured_rate = float(rate)
        self.min_rate = min(self.configured_rate, min_rate or self.configured_rate / 16)
        self.burst = float(burst)
        self._rate = self.configured_rate
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock.now()
        self._paused_until = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def rate(self) -> float:
        """The current rate (tokens per second), at most ``configured_rate``."""
        return self._rate

    @property
    def paused_until(self) -> float:
        """Clock time before which nothing is granted (``-inf`` when never paused)."""
        return self._paused_until

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        self._refill(self._clock.now())
        return self._tokens

    async def acquire(self, n: float = 1) -> None:
        """Wait until ``n`` tokens are available (and any pause is over), then take them."""
        if n > self.burst:
            raise ValueError(f"cannot take {n} tokens from a bucket of {self.burst}")
        async with self._lock:
            while True:
                now = self._clock.now()
                if now < self._paused_until:
                    await self._clock.sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= n:
                    self._tokens -= n
                    return
                await self._clock.sleep((n - self._tokens) / self._rate)

    def pause_until(self, t: float) -> None:
        """Grant nothing before clock time ``t`` (a Retry-After); pauses only ever extend.

        The bucket resumes with at most one token, so a throttled channel sees one request at
        ``t`` and then the (lowered) rate, not a full burst.
        """
        self._refill(self._clock.now())
        if t <= self._paused_until:
            return
        self._paused_until = t
        self._tokens = min(self._tokens, 1.0)
        self._updated = max(self._updated, t)

    def set_rate(self, rate: float) -> None:
        """Set the current rate, kept within ``[min_rate, configured_rate]``."""
        self._refill(self._clock.now())
        self._rate = min(self.configured_rate, max(self.min_rate, rate))

    def slow_down(self) -> None:
        """The channel throttled us: halve the rate (down to ``min_rate``)."""
        self.set_rate(self._rate / 2)

    def recover(self) -> None:
        """A request succeeded: step the rate back toward the configured one."""
        if self._rate < self.configured_rate:
            self.set_rate(self._rate + self.configured_rate * RECOVERY_STEP)

    def _refill(self, now: float) -> None:
        # Tokens do not accrue during a pause (_updated is moved to its end).
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
