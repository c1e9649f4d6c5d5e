"""The injectable clock: every actor timer (idle passivation, restart backoff) reads time here.

``SystemClock`` is the real one. ``ManualClock`` only moves when a test calls ``advance``, so
tests of passivation, backoff and rate limits are deterministic and take no real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Final, Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "sleep_unless"]

#: Deadlines this close (seconds) to the manual time count as reached (float rounding).
_TOLERANCE: Final = 1e-9


class Clock(Protocol):
    """Where time comes from: a monotonic reading, the wall clock, and a sleep on the same scale."""

    def now(self) -> float:
        """Monotonic seconds (arbitrary origin); only differences are meaningful."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch (for timestamps that leave the process)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``now()`` has advanced by at least ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    def now(self) -> float:
        """Monotonic seconds (``time.monotonic``, the same scale as the event loop's clock)."""
        return time.monotonic()

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock for tests: time stands still until ``advance``; sleepers wake when it passes
    their deadline (in deadline order), so timer-driven behaviour needs no real waiting.

    Waking is asynchronous, as with any future: after ``advance`` the woken tasks run when the
    test next yields to the event loop (``await asyncio.sleep(0)``).
    """

    def __init__(self, start: float = 0.0, *, wall_ms: int = 1_800_000_000_000) -> None:
        self._now = start
        self._wall_origin_ms = wall_ms - int(start * 1000)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """The manual time in seconds."""
        return self._now

    def wall_ms(self) -> int:
        """The wall clock that moves with the manual time (ms since the epoch)."""
        return self._wall_origin_ms + int(self._now * 1000)

    async def sleep(self, seconds: float) -> None:
        """Wait until the manual time reaches ``now() + seconds``; ``seconds <= 0`` only yields."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future  # a cancelled sleeper leaves a done future that advance() skips

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError("a clock never goes back")
        self._now += seconds
        # A deadline computed as now + (t - now) can land an ulp past t: count that as reached.
        reached = self._now + _TOLERANCE
        while self._sleepers and self._sleepers[0][0] <= reached:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (lets a test wait until a task is parked on the clock)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    @property
    def next_deadline(self) -> float | None:
        """The earliest pending deadline, or None when nobody sleeps."""
        pending = [deadline for deadline, _, future in self._sleepers if not future.done()]
        return min(pending) if pending else None


async def sleep_unless(clock: Clock, seconds: float, event: asyncio.Event) -> bool:
    """Sleep ``seconds`` on ``clock``, or less if ``event`` is set first; True if it was set.

    For waits a shutdown must cut short (a retry pause in a loop that ``stop`` ends). Both
    waits are tasks owned here: whichever loses is cancelled and awaited before returning.
    """
    if event.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    setter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((sleeper, setter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, setter):
            task.cancel()
        await asyncio.gather(sleeper, setter, return_exceptions=True)
    return event.is_set()
