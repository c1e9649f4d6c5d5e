"""``invsync bench propagate --find-max``: the search converges on the highest rate that holds,
within its precision and its time budget; what "holds" means; the daemon's CPU time is read.

The search is driven here by a deterministic stand-in for one bench run (a daemon that holds
up to a known capacity), so the algorithm is checked in milliseconds; the real runs need a
daemon for minutes and belong to the benchmark, not the suite.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invsync.bench.propagate import holds, process_cpu_s, search_max_rate


def _figures(rate: float, *, p99_ms: float, **over: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "target_rate": rate,
        "events_per_s": rate,
        "events": int(rate * 5) or 1,
        "failed_requests": 0,
        "converged": True,
        "p50_ms": p99_ms / 4,
        "p99_ms": p99_ms,
    }
    figures.update(over)
    return figures


def _capacity(limit: float, tried: list[float]) -> Any:
    async def run(rate: float) -> dict[str, Any]:
        tried.append(rate)
        return _figures(rate, p99_ms=20.0 if rate <= limit else 500.0)

    return run


@settings(max_examples=60, deadline=None)
@given(
    limit=st.floats(min_value=50, max_value=200_000),
    start=st.floats(min_value=10, max_value=10_000),
)
async def test_the_search_brackets_the_capacity_within_its_precision(
    limit: float, start: float
) -> None:
    tried: list[float] = []
    low, high, best, runs = await search_max_rate(
        _capacity(limit, tried), start=start, budget_s=1e9, precision=0.1, pause_s=0
    )
    assert high is not None
    assert low <= limit < high  # the highest that held is real, the lowest that failed too
    assert high - low <= 0.1 * low  # within the precision asked for
    assert best is not None and best["target_rate"] == low and best["held"]
    assert [r["target_rate"] for r in runs] == tried
    assert all(r["held"] == (r["target_rate"] <= limit) for r in runs)


async def test_a_search_that_never_holds_reports_no_rate() -> None:
    low, high, best, runs = await search_max_rate(
        _capacity(0.5, []), start=1000, budget_s=1e9, pause_s=0
    )
    assert (low, best) == (0.0, None)
    assert high is not None and high >= 1
    assert runs and not any(r["held"] for r in runs)


async def test_no_run_starts_after_the_budget() -> None:
    now = [0.0]
    tried: list[float] = []

    async def slow(rate: float) -> dict[str, Any]:
        tried.append(rate)
        now[0] += 30.0  # each run takes 30 s of the search's clock
        return _figures(rate, p99_ms=20.0)  # always holds: doubling would go on forever

    low, high, _, runs = await search_max_rate(
        slow, start=100, budget_s=100, pause_s=0, clock=lambda: now[0]
    )
    assert tried == [100, 200, 400, 800]  # started at 0, 30, 60 and 90 s; none at 120 s
    assert (low, high) == (800, None)
    assert len(runs) == 4


@pytest.mark.parametrize(
    ("over", "held"),
    [
        ({}, True),
        ({"p99_ms": 100.0}, False),  # the limit itself does not hold
        ({"converged": False}, False),  # a channel never showed the last value
        ({"failed_requests": 1}, False),  # an event refused or lost on the way in
        ({"events_per_s": 900.0}, False),  # the load generator fell behind the offer
        ({"events_per_s": 960.0}, True),
        ({"events": 0}, False),
    ],
)
def test_what_holds_means(over: dict[str, Any], held: bool) -> None:
    assert holds(_figures(1000.0, **{"p99_ms": 99.0, **over})) is held


def test_process_cpu_time_is_read_from_proc() -> None:
    before = process_cpu_s(os.getpid())
    sum(i * i for i in range(300_000))  # burn some CPU
    assert process_cpu_s(os.getpid()) > before > 0
    assert process_cpu_s(2**22 + 12345) == 0.0  # no such process
