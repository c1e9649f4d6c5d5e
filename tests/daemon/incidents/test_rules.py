"""The incident queue's pure rules, without a store or an event loop."""

from __future__ import annotations

from invsync.daemon.incidents.records import ExceptionRecord
from invsync.daemon.incidents.rules import (
    DAY_MS,
    OutageTracker,
    backorder_eta,
    cancel_lines,
    shortfall,
)


def test_backorder_eta_needs_incoming_to_cover_every_short_sku() -> None:
    assert backorder_eta({"A": 3}, {"A": 2}, 5, 0) == (5 * DAY_MS, None)
    eta, why = backorder_eta({"A": 3}, {"A": 2, "B": 1}, 5, 0)
    assert eta is None and why is not None and "B" in why
    # Known due dates win over the lead time; the last SKU to arrive dates the order.
    assert backorder_eta({"A": 3, "B": 1}, {"A": 2, "B": 1}, 5, 0, {"A": 9 * DAY_MS}) == (
        9 * DAY_MS,
        None,
    )
    assert backorder_eta({"A": 3}, {"A": 2}, 5, 0, {"A": DAY_MS}) == (DAY_MS, None)


def test_shortfall_counts_missing_units_else_the_whole_lines() -> None:
    shortages = [{"sku": "A", "requested": 5, "free": 2}, {"sku": "A", "requested": 1, "free": 0}]
    assert shortfall(shortages, [{"sku": "A", "qty": 6}]) == {"A": 4}
    # The engine named nothing short (e.g. the router's fallback): the order's lines are.
    assert shortfall(
        [], [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}, {"sku": "A", "qty": 1}]
    ) == {
        "A": 3,
        "B": 1,
    }


def test_an_outage_is_due_after_the_threshold_and_recovers_once() -> None:
    tracker = OutageTracker()
    tracker.changed("shop", closed=False, now=100.0)
    tracker.changed("shop", closed=False, now=110.0)  # open -> half-open: the same outage
    assert tracker.due(120.0, 30.0) == {}
    assert tracker.due(130.0, 30.0) == {"shop": 100.0}
    tracker.changed("shop", closed=True, now=131.0)
    assert tracker.due(200.0, 30.0) == {}
    assert tracker.take_recovered() == {"shop"}
    assert tracker.take_recovered() == set()


def test_cancel_lines_are_the_records_lines_else_the_whole_order() -> None:
    record = ExceptionRecord(
        id="X",
        kind="oversold",
        summary="s",
        created_ms=1,
        updated_ms=1,
        details={"lines": [{"sku": "A", "qty": 2}]},
    )
    assert cancel_lines(record, None) == [("A", 2)]
    bare = ExceptionRecord(id="Y", kind="oversold", summary="s", created_ms=1, updated_ms=1)
    assert cancel_lines(bare, None) is None
