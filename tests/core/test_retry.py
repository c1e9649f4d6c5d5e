"""The one backoff rule: exponential, capped, jittered, and slept on the injectable clock."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invsync.core.clock import ManualClock
from invsync.core.retry import Backoff


def test_ceiling_doubles_from_base_until_the_cap() -> None:
    backoff = Backoff(0.1, 1.0, jitter="none")
    assert [backoff.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@given(
    base=st.floats(0.001, 10),
    extra=st.floats(0, 100),
    attempt=st.integers(0, 10_000),
    jitter=st.sampled_from(["full", "equal"]),
    seed=st.integers(0, 2**32),
)
def test_jittered_delays_stay_within_the_ceiling(
    base: float, extra: float, attempt: int, jitter: str, seed: int
) -> None:
    backoff = Backoff(base, base + extra, jitter=jitter, rng=random.Random(seed))  # type: ignore[arg-type]
    top = backoff.ceiling(attempt)
    low = top / 2 if jitter == "equal" else 0.0
    assert low <= backoff.delay(attempt) <= top <= base + extra


@pytest.mark.parametrize(("base", "cap", "factor"), [(0, 1, 2), (2, 1, 2), (0.1, 1, 0.5)])
def test_refuses_a_backoff_that_cannot_back_off(base: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap, factor=factor)


async def test_wait_sleeps_on_the_injected_clock() -> None:
    clock = ManualClock()
    backoff = Backoff(2.0, 10.0, jitter="none")
    task = asyncio.create_task(backoff.wait(clock, 2))
    await asyncio.sleep(0)
    assert clock.next_deadline == pytest.approx(8.0)
    clock.advance(7.9)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.1)
    assert await task == pytest.approx(8.0)


@pytest.mark.parametrize("jitter", ["full", "equal", "none"])
def test_capped_is_a_delay_at_the_cap_jittered_alike(jitter: str) -> None:
    backoff = Backoff(1.0, 4.0, jitter=jitter, rng=random.Random(7))  # type: ignore[arg-type]
    twin = Backoff(1.0, 4.0, jitter=jitter, rng=random.Random(7))  # type: ignore[arg-type]
    assert [backoff.capped() for _ in range(20)] == [twin.delay(10) for _ in range(20)]


def test_equal_jitter_draws_from_the_upper_half_of_the_ceiling() -> None:
    # The actor runtime's restarts relied on exactly this: delay * uniform(0.5, 1.0).
    backoff = Backoff(1.0, 8.0, jitter="equal", rng=random.Random(3))
    rng = random.Random(3)
    for attempt in range(6):
        top = min(8.0, 2.0**attempt)
        assert backoff.delay(attempt) == pytest.approx(top * rng.uniform(0.5, 1.0))
