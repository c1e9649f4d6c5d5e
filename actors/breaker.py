"""A circuit breaker on the injectable clock, so a channel outage costs no requests.

closed --(``threshold`` consecutive failures)--> open --(cool-down)--> half-open: one probe
--success--> closed, --failure--> open again with the cool-down doubled (up to ``max_cooldown``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from ..core.clock import Clock

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    """Where the breaker is; ``half_open`` lets one probe through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures; ``allow()`` says whether a request may go out now.

    ``on_change(state)`` is called on every transition (for the breaker gauge and logs).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        threshold: int = 5,
        base_cooldown: float = 1.0,
        max_cooldown: float = 60.0,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1 (got {threshold})")
        if not 0 < base_cooldown <= max_cooldown:
            raise ValueError("need 0 < base_cooldown <= max_cooldown")
        self.threshold = threshold
        self.base_cooldown = base_cooldown
        self.max_cooldown = max_cooldown
        self.failures = 0
        self.cooldown = base_cooldown
        self._clock = clock
        self.on_change = on_change
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker turns half-open once its cool-down has passed)."""
        if self._state is BreakerState.OPEN and self.retry_in() <= 0:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock.now())

    def allow(self) -> bool:
        """May a request go out now? In half-open, True once (the probe) until it reports."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        """The channel answered: close, forget failures, reset the cool-down."""
        self.failures = 0
        self.cooldown = self.base_cooldown
        self._probing = False
        self._set(BreakerState.CLOSED)

    def failure(self) -> None:
        """The channel failed (outage-like): count it, open at the threshold or a failed probe."""
        self.failures += 1
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self.cooldown = min(self.max_cooldown, self.cooldown * 2)
            self._open()
        elif state is BreakerState.CLOSED and self.failures >= self.threshold:
            self.cooldown = self.base_cooldown
            self._open()

    def abandon_probe(self) -> None:
        """The probe let through never reported (its worker crashed): let the next request probe.

        Without this a half-open breaker whose probe was lost would refuse every request for good.
        """
        self._probing = False

    def _open(self) -> None:
        self._probing = False
        self._opened_at = self._clock.now()
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        self._state = state
        if self.on_change is not None:
            self.on_change(state)
