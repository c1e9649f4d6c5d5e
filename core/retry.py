"""One backoff rule for every retry in invsync: exponential, capped, with full jitter.

Actor restarts, channel pushes, the intake's store retries, the MQTT reconnects and the script
loader all wait with `Backoff.delay(attempt)` and sleep on the injectable clock
(`core.clock.Clock.sleep`), so tests drive them with a `ManualClock` instead of real time.

Full jitter (a delay drawn uniformly from ``[0, min(cap, base * factor**attempt))``) spreads the
retries of many clients that failed together, which is what a store or channel coming back needs
(AWS Architecture Blog, "Exponential Backoff And Jitter", 2015). ``jitter="equal"`` keeps half of
the delay fixed, for loops that must not retry at once (a reconnect after a refused login).
"""

from __future__ import annotations

import random
from typing import Literal

from .clock import Clock

__all__ = ["Backoff", "Jitter"]

Jitter = Literal["full", "equal", "none"]

#: 2 ** 32 is beyond any cap we use; larger attempts would overflow the float for nothing.
_MAX_EXPONENT = 32


class Backoff:
    """Delays of attempt 0, 1, 2, ...: ``base * factor**attempt`` capped at ``cap``, jittered.

    ``rng`` makes the jitter reproducible in tests; ``jitter="none"`` gives the bare ceiling.
    """

    def __init__(
        self,
        base_s: float,
        cap_s: float,
        *,
        factor: float = 2.0,
        jitter: Jitter = "full",
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError(f"backoff needs 0 < base_s <= cap_s, got {base_s} and {cap_s}")
        if factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {factor}")
        self.base_s = base_s
        self.cap_s = cap_s
        self.factor = factor
        self.jitter: Jitter = jitter
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay of ``attempt`` (0-based): ``min(cap, base * factor**attempt)``."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        return min(self.cap_s, self.base_s * self.factor**exponent)

    def delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0-based), jittered as configured."""
        return self._jittered(self.ceiling(attempt))

    def capped(self) -> float:
        """A delay at the cap, jittered as configured: for a loop that stopped ramping up."""
        return self._jittered(self.cap_s)

    def _jittered(self, top: float) -> float:
        if self.jitter == "full":
            return self._rng.uniform(0.0, top)
        if self.jitter == "equal":
            return top / 2 + self._rng.uniform(0.0, top / 2)
        return top

    async def wait(self, clock: Clock, attempt: int) -> float:
        """Sleep ``delay(attempt)`` on ``clock``; returns the delay slept."""
        pause = self.delay(attempt)
        await clock.sleep(pause)
        return pause
