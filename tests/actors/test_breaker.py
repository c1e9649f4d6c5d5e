"""The circuit breaker on a hand-moved clock: open, cool down, probe, close or back off."""

from __future__ import annotations

import pytest

from invsync.actors.breaker import BreakerState, CircuitBreaker
from invsync.core.clock import ManualClock


def breaker(clock: ManualClock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        clock=clock,
        threshold=3,
        base_cooldown=1.0,
        max_cooldown=4.0,
        on_change=None if changes is None else changes.append,
    )


def test_opens_after_threshold_consecutive_failures() -> None:
    clock = ManualClock()
    b = breaker(clock)
    b.failure()
    b.failure()
    b.success()  # not consecutive any more
    b.failure()
    b.failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    b.failure()
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    assert b.retry_in() == 1.0


def test_default_threshold_is_five() -> None:
    b = CircuitBreaker(clock=ManualClock())
    for _ in range(4):
        b.failure()
    assert b.state is BreakerState.CLOSED
    b.failure()
    assert b.state is BreakerState.OPEN
    assert b.cooldown == 1.0 and b.max_cooldown == 60.0


def test_half_open_after_cooldown_lets_exactly_one_probe_through() -> None:
    clock = ManualClock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.advance(0.99)
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.advance(0.01)
    assert b.state is BreakerState.HALF_OPEN
    assert b.retry_in() == 0
    assert b.allow()
    assert not b.allow()  # the probe is out


def test_a_successful_probe_closes() -> None:
    clock = ManualClock()
    changes: list[BreakerState] = []
    b = breaker(clock, changes)
    for _ in range(3):
        b.failure()
    clock.advance(1)
    assert b.allow()
    b.success()
    assert b.state is BreakerState.CLOSED
    assert b.failures == 0 and b.cooldown == 1.0
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_reopens_with_the_cooldown_doubled_up_to_the_max() -> None:
    clock = ManualClock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    cooldowns = []
    for _ in range(4):
        clock.advance(b.retry_in())
        assert b.allow()
        b.failure()
        assert b.state is BreakerState.OPEN
        cooldowns.append(b.retry_in())
    assert cooldowns == [2.0, 4.0, 4.0, 4.0]
    clock.advance(4)
    assert b.allow()
    b.success()
    assert b.cooldown == 1.0  # back to the base after closing


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(clock=ManualClock(), threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(clock=ManualClock(), base_cooldown=10, max_cooldown=1)


def test_a_lost_probe_is_abandoned_and_the_next_request_probes() -> None:
    clock = ManualClock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.advance(1.0)
    assert b.allow()  # the probe goes out ...
    assert not b.allow()  # ... and nothing else while it is out
    b.abandon_probe()  # its worker crashed before it reported
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()
